package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/weftnet/weft/internal/cni"
)

// plugin runs the CNI commands. Results go to stdout, warnings to stderr.
type plugin struct {
	stdout, stderr io.Writer
	// cniVersion is the config's version once decoded, for error results.
	cniVersion string
}

// setup decodes the config and the pod of a command. pod is ok only for a
// Kubernetes pod's sandbox.
func (p *plugin) setup(args *skel.CmdArgs) (conf *config, pod cni.PodRef, ok bool, err error) {
	// The version alone first, so that even an error about another field is
	// written in the config's version.
	var header struct {
		CNIVersion string `json:"cniVersion"`
	}
	if json.Unmarshal(args.StdinData, &header) == nil {
		p.cniVersion = header.CNIVersion
	}
	conf, cerr := parseConfig(args.StdinData)
	if cerr != nil {
		return nil, cni.PodRef{}, false, cerr
	}
	namespace, name, ok := podIdentity(args.Args)
	return conf, cni.PodRef{Namespace: namespace, Name: name, ContainerID: args.ContainerID}, ok, nil
}

// add asks weft to isolate the pod and waits for its answer. Only then does
// the runtime get the previous result back and start the pod.
func (p *plugin) add(args *skel.CmdArgs) error {
	conf, pod, isPod, err := p.setup(args)
	if err != nil {
		return err
	}
	if conf.PrevResult == nil {
		return invalidConfig("weft-cni is a chained plugin and the config has no prevResult: " +
			"list it after the plugin that assigns the pod's addresses")
	}
	if !isPod {
		// Not a Kubernetes pod: nothing for weft to isolate.
		return p.printPrevResult(conf)
	}
	ips, err := conf.addresses()
	if err != nil {
		return invalidConfig("%v", err)
	}
	if cerr := p.ask(conf, cni.CommandAdd, pod, ips); cerr != nil {
		if !conf.FailOpen {
			return cerr
		}
		fmt.Fprintf(p.stderr, "weft-cni: warning: pod %s starts without isolation confirmed by weft (failOpen is set): %s\n", pod, cerr.Msg)
	}
	return p.printPrevResult(conf)
}

// del tells weft the sandbox is gone. It never fails because of weft: DEL must
// succeed for the runtime to finish tearing the sandbox down, and weft also
// learns of deleted pods from the API server.
func (p *plugin) del(args *skel.CmdArgs) error {
	conf, pod, isPod, err := p.setup(args)
	if err != nil {
		return err
	}
	if !isPod {
		return nil
	}
	ips, err := conf.addresses()
	if err != nil {
		fmt.Fprintf(p.stderr, "weft-cni: DEL of pod %s: ignoring prevResult: %v\n", pod, err)
		ips = nil
	}
	if cerr := p.ask(conf, cni.CommandDel, pod, ips); cerr != nil {
		fmt.Fprintf(p.stderr, "weft-cni: DEL of pod %s succeeds without weft: %s\n", pod, cerr.Msg)
	}
	return nil
}

// check asks weft whether the pod's isolation is still programmed.
func (p *plugin) check(args *skel.CmdArgs) error {
	conf, pod, isPod, err := p.setup(args)
	if err != nil {
		return err
	}
	if !isPod {
		return nil
	}
	ips, err := conf.addresses()
	if err != nil {
		return invalidConfig("%v", err)
	}
	cerr := p.ask(conf, cni.CommandCheck, pod, ips)
	if cerr != nil && cerr.Code == types.ErrTryAgainLater && conf.FailOpen {
		fmt.Fprintf(p.stderr, "weft-cni: warning: CHECK of pod %s passes without weft (failOpen is set): %s\n", pod, cerr.Msg)
		return nil
	}
	if cerr != nil {
		return cerr
	}
	return nil
}

// ask sends one command to weft and waits at most the config's timeout. The
// error is a CNI error: try again later (11) when weft could not be asked or
// did not answer in time, internal (999) when weft answered no to a CHECK, and
// try again later when it refused an ADD or DEL, which it does only while it
// cannot do the work yet.
func (p *plugin) ask(conf *config, command string, pod cni.PodRef, ips []netip.Addr) *types.Error {
	ctx, cancel := context.WithTimeout(context.Background(), conf.Timeout)
	defer cancel()
	resp, err := cni.Call(ctx, conf.Socket, cni.Request{Command: command, Pod: pod, IPs: ips})
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("weft did not confirm %s of pod %s within %v: %v", command, pod, conf.Timeout, err), "")
	case err != nil:
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("cannot reach weft for %s of pod %s: %v", command, pod, err), "")
	case !resp.OK && command == cni.CommandCheck:
		return types.NewError(types.ErrInternal,
			fmt.Sprintf("weft on unix %s says pod %s is not isolated as it should be: %s", conf.Socket, pod, resp.Error), "")
	case !resp.OK:
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("weft on unix %s did not complete %s of pod %s: %s", conf.Socket, command, pod, resp.Error), "")
	}
	return nil
}

// printPrevResult hands the previous result on as this plugin's result.
func (p *plugin) printPrevResult(conf *config) error {
	out, err := conf.prevResultJSON()
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	if _, err := p.stdout.Write(out); err != nil {
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("write the result: %v", err), "")
	}
	return nil
}
