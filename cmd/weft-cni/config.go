package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/weftnet/weft/internal/cni"
)

// defaultTimeout is how long ADD waits for weft unless the config says otherwise.
const defaultTimeout = 10 * time.Second

// weftFields are the config keys weft-cni adds to the standard ones.
type weftFields struct {
	// Socket is the weft daemon's CNI socket.
	Socket string `json:"socket"`
	// Timeout is how long to wait for weft, as a Go duration ("10s").
	Timeout string `json:"timeout"`
	// FailOpen lets a pod start when weft cannot confirm its isolation.
	FailOpen bool `json:"failOpen"`
	// PrevResult is kept as the runtime sent it, to hand it on unchanged.
	PrevResult json.RawMessage `json:"prevResult"`
}

// config is a decoded and checked network configuration.
type config struct {
	// CNIVersion is the config's version; results are printed in it.
	CNIVersion string
	// Socket, Timeout and FailOpen have their defaults filled in.
	Socket   string
	Timeout  time.Duration
	FailOpen bool
	// PrevResult is the previous plugin's result, nil when there is none.
	PrevResult types.Result
	// rawPrevResult is PrevResult as the runtime sent it.
	rawPrevResult json.RawMessage
}

// parseConfig decodes a network configuration, fills in the defaults and checks
// every field weft-cni uses. Its errors are CNI errors that name the field.
func parseConfig(data []byte) (*config, *types.Error) {
	var std types.PluginConf
	if err := json.Unmarshal(data, &std); err != nil {
		return nil, decodeError(err)
	}
	var own weftFields
	if err := json.Unmarshal(data, &own); err != nil {
		return nil, decodeError(err)
	}
	c := &config{
		CNIVersion: std.CNIVersion,
		Socket:     own.Socket,
		Timeout:    defaultTimeout,
		FailOpen:   own.FailOpen,
	}
	if c.Socket == "" {
		c.Socket = cni.DefaultSocket
	}
	if !filepath.IsAbs(c.Socket) {
		return nil, invalidConfig("field \"socket\" must be an absolute path, not %q", c.Socket)
	}
	if own.Timeout != "" {
		d, err := time.ParseDuration(own.Timeout)
		if err != nil {
			return nil, invalidConfig("field \"timeout\" must be a duration such as \"10s\", not %q", own.Timeout)
		}
		if d <= 0 || d > cni.MaxTimeout {
			return nil, invalidConfig("field \"timeout\" is %v; it must be more than 0 and at most %v", d, cni.MaxTimeout)
		}
		c.Timeout = d
	}
	if std.RawPrevResult != nil {
		if err := version.ParsePrevResult(&std); err != nil {
			return nil, invalidConfig("field \"prevResult\" is not a CNI %s result: %v", c.CNIVersion, err)
		}
		c.PrevResult = std.PrevResult
		c.rawPrevResult = own.PrevResult
	}
	return c, nil
}

// decodeError turns a JSON decoding error into a CNI error: a value of the
// wrong type is an invalid config that names the field, anything else a
// decoding failure.
func decodeError(err error) *types.Error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		want := jsonKind(typeErr.Type)
		if typeErr.Field == "timeout" {
			want = `a duration string such as "10s"`
		}
		return invalidConfig("field %q must be %s, not a JSON %s", typeErr.Field, want, typeErr.Value)
	}
	return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("decode the weft-cni network config: %v", err), "")
}

// jsonKind says in words which JSON values decode into a Go type.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + t.String()
}

func invalidConfig(format string, args ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, "invalid weft-cni network config: "+fmt.Sprintf(format, args...), "")
}

// addresses returns the pod's addresses from the previous result, without
// prefix lengths, in the result's order.
func (c *config) addresses() ([]netip.Addr, error) {
	if c.PrevResult == nil {
		return nil, nil
	}
	result, err := types100.NewResultFromResult(c.PrevResult)
	if err != nil {
		return nil, fmt.Errorf("read the addresses of prevResult: %w", err)
	}
	ips := make([]netip.Addr, 0, len(result.IPs))
	for i, ip := range result.IPs {
		addr, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			return nil, fmt.Errorf("prevResult ips[%d].address %q is not an IP address", i, ip.Address.String())
		}
		ips = append(ips, addr.Unmap())
	}
	return ips, nil
}

// prevResultJSON is what ADD prints when weft-cni changes nothing: the previous
// result unchanged when it is already in the config's version, else converted
// to that version.
func (c *config) prevResultJSON() ([]byte, error) {
	var header struct {
		CNIVersion string `json:"cniVersion"`
	}
	if len(c.rawPrevResult) > 0 && json.Unmarshal(c.rawPrevResult, &header) == nil && header.CNIVersion == c.CNIVersion {
		return append(append([]byte(nil), c.rawPrevResult...), '\n'), nil
	}
	converted, err := c.PrevResult.GetAsVersion(c.CNIVersion)
	if err != nil {
		return nil, fmt.Errorf("convert prevResult to CNI %s: %w", c.CNIVersion, err)
	}
	var out strings.Builder
	if err := converted.PrintTo(&out); err != nil {
		return nil, fmt.Errorf("encode prevResult: %w", err)
	}
	return []byte(out.String()), nil
}

// podIdentity reads the Kubernetes pod's namespace and name from CNI_ARGS
// ("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=name;..."). ok is false when either is
// missing: the sandbox is not a Kubernetes pod's.
func podIdentity(cniArgs string) (namespace, name string, ok bool) {
	for _, pair := range strings.Split(cniArgs, ";") {
		key, value, found := strings.Cut(pair, "=")
		if !found {
			continue
		}
		switch strings.TrimSpace(key) {
		case "K8S_POD_NAMESPACE":
			namespace = strings.TrimSpace(value)
		case "K8S_POD_NAME":
			name = strings.TrimSpace(value)
		}
	}
	return namespace, name, namespace != "" && name != ""
}
