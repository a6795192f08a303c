package conntrack

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Cutter deletes conntrack entries in the network namespace of the calling
// process (weft runs in the node's namespace). It keeps no state between
// calls; one Cutter may serve concurrent calls.
type Cutter struct {
	log *slog.Logger
}

// New returns a Cutter that logs each deleted entry at debug level and each
// Cut that deleted something at info level. A nil log discards everything.
func New(log *slog.Logger) *Cutter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cutter{log: log}
}

// family is an address family that Cut walks, in order.
type family struct {
	number uint8
	name   string
}

var families = [...]family{{unix.AF_INET, "IPv4"}, {unix.AF_INET6, "IPv6"}}

// socketTimeout bounds each wait for the kernel, which always answers; it
// turns a wedged socket into an error rather than a stuck sync.
const socketTimeout = 30 * time.Second

// Cut deletes the entries of TCP, UDP and SCTP flows, IPv4 and IPv6, for
// which keep returns false, and returns how many it deleted.
//
// Each family takes one pass: a dump of the family's table, during which
// keep is called once per entry (so keep must not call Cut), then a delete
// of each refused entry. Entries of other protocols are left alone and keep
// is not called for them. An entry that vanished between dump and delete,
// or that a new connection with the same addresses and ports replaced (the
// kernel tells them apart by the entry's id), is neither deleted nor counted
// nor an error. Cut covers every conntrack zone; a Flow does not say which
// zone its entry is in. Entries it cannot read are left alone and logged.
//
// The table holds every connection of the namespace, not only those between
// pods that weft's forward-path rules judge: keep must return true for the
// others (the node's own connections, traffic weft does not filter), or Cut
// cuts them as well. Deleting the entry of a live connection costs it its
// NAT binding, which its next packet may not get back the same.
//
// Errors name the step and family that failed and, where the kernel says
// so, that the process lacks CAP_NET_ADMIN or that the kernel has no
// nf_conntrack netlink interface. After an error in one family Cut still
// walks the other, unless the error would repeat there; the count covers
// both.
func (c *Cutter) Cut(keep func(Flow) bool) (int, error) {
	// One socket for both families and all deletes: per-request sockets
	// would cost a socket, bind and close for each deleted entry.
	sock, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_NETFILTER)
	if err != nil {
		return 0, fmt.Errorf("delete conntrack entries: open a netfilter netlink socket: %w", explain(err, true))
	}
	defer sock.Close()
	timeout := unix.NsecToTimeval(socketTimeout.Nanoseconds())
	if err := sock.SetSendTimeout(&timeout); err != nil {
		return 0, fmt.Errorf("delete conntrack entries: %w", err)
	}
	if err := sock.SetReceiveTimeout(&timeout); err != nil {
		return 0, fmt.Errorf("delete conntrack entries: %w", err)
	}
	sockets := map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: {Socket: sock}}

	total := 0
	var errs []error
	for _, fam := range families {
		n, err := c.cutFamily(sockets, fam, keep)
		total += n
		if err != nil {
			errs = append(errs, err)
			if errors.Is(err, unix.EPERM) || errors.Is(err, errUnavailable) {
				break
			}
		}
	}
	if total > 0 {
		c.log.Info("cut connections the ruleset no longer admits", "deleted", total)
	}
	return total, errors.Join(errs...)
}

// cutFamily makes the pass over one family's table.
func (c *Cutter) cutFamily(sockets map[int]*nl.SocketHandle, fam family, keep func(Flow) bool) (int, error) {
	var (
		refused    []entry
		unreadable int
		firstBad   error
	)
	dump := newRequest(sockets, nl.IPCTNL_MSG_CT_GET, unix.NLM_F_DUMP, fam)
	dumpErr := dump.ExecuteIter(unix.NETLINK_NETFILTER, 0, func(msg []byte) bool {
		e, err := parseEntry(msg)
		if err != nil {
			unreadable++
			if firstBad == nil {
				firstBad = err
			}
			return true
		}
		if judged(e.flow.Protocol) && !keep(e.flow) {
			refused = append(refused, e)
		}
		return true
	})
	interrupted := errors.Is(dumpErr, nl.ErrDumpInterrupted)
	if dumpErr != nil && !interrupted {
		return 0, fmt.Errorf("delete conntrack entries (%s): dump the table: %w", fam.name, explain(dumpErr, true))
	}
	if unreadable > 0 {
		// An entry weft cannot read is one it cannot judge: leave it.
		c.log.Warn("conntrack entries left alone: cannot read them", "family", fam.name, "entries", unreadable, "first", firstBad)
	}

	deleted, failed := 0, 0
	var firstErr error
	for _, e := range refused {
		del := newRequest(sockets, nl.IPCTNL_MSG_CT_DELETE, unix.NLM_F_ACK, fam)
		del.AddRawData(e.key)
		_, err := del.Execute(unix.NETLINK_NETFILTER, 0)
		switch {
		case err == nil:
			deleted++
			c.log.Debug("cut connection", "protocol", protocolName(e.flow.Protocol),
				"src", netip.AddrPortFrom(e.flow.Src, e.flow.SrcPort).String(),
				"dst", netip.AddrPortFrom(e.flow.Dst, e.flow.DstPort).String())
		case errors.Is(err, unix.ENOENT):
			// Closed, timed out or replaced since the dump.
		default:
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("%s %s -> %s: %w", protocolName(e.flow.Protocol),
					netip.AddrPortFrom(e.flow.Src, e.flow.SrcPort), netip.AddrPortFrom(e.flow.Dst, e.flow.DstPort), explain(err, false))
			}
		}
	}
	switch {
	case failed > 0:
		return deleted, fmt.Errorf("delete conntrack entries (%s): %d of %d deletes failed, the first: %w", fam.name, failed, len(refused), firstErr)
	case interrupted:
		return deleted, fmt.Errorf("delete conntrack entries (%s): the kernel interrupted the dump, so refused entries may remain; cut again", fam.name)
	}
	return deleted, nil
}

// newRequest starts a ctnetlink request on the shared socket.
func newRequest(sockets map[int]*nl.SocketHandle, msgType, flags int, fam family) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.NFNL_SUBSYS_CTNETLINK<<8|msgType, flags)
	req.Sockets = sockets
	req.AddData(&nl.Nfgenmsg{NfgenFamily: fam.number, Version: nl.NFNETLINK_V0})
	return req
}

// errUnavailable marks errors with which the kernel says it has no
// ctnetlink.
var errUnavailable = errors.New("the kernel's nf_conntrack netlink interface is unavailable (it needs nf_conntrack and nf_conntrack_netlink, CONFIG_NF_CT_NETLINK)")

// explain adds what a user should know to the kernel errors that have a
// known cause. Only answers to opening the socket or to a dump may mean the
// interface is missing: Cut's requests are well formed, so there EINVAL or
// EOPNOTSUPP come from nfnetlink finding no ctnetlink subsystem, and
// EPROTONOSUPPORT from a kernel without netfilter netlink.
func explain(err error, opening bool) error {
	switch {
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%w (weft needs CAP_NET_ADMIN in the node's network namespace)", err)
	case opening && (errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) ||
		errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)):
		return fmt.Errorf("%w: %w", err, errUnavailable)
	}
	return err
}
