package watch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// A list of ten thousand pods is about 15 MB of protobuf, and a hundred
// thousand decoded pods about 350 MB: more than weft keeps of them
// converted. So weft reads lists of built-in kinds as a stream and decodes
// and converts one item at a time (streamList); the reflector's list stays
// one request, which the API server's cache answers (resourceVersion "0").
// With a streaming initial list (WatchList: the API server and etcd
// 3.4.31/3.5.13 or later) weft does not list at all.

// protobufPrefix starts every protobuf-encoded API response
// (k8s.io/apimachinery's runtime/serializer/protobuf).
var protobufPrefix = []byte{'k', '8', 's', 0}

// The protobuf fields streamList reads: runtime.Unknown's raw (the list),
// a list's metadata and items.
const (
	unknownRawField = 2
	listMetaField   = 1
	listItemsField  = 2
)

// protobufObject is an API object of a built-in kind, which decodes from
// protobuf.
type protobufObject interface {
	apiObject
	Unmarshal([]byte) error
}

// errNotProtobuf says the API server answered a list in another encoding.
var errNotProtobuf = errors.New("the list is not protobuf-encoded")

// streamList lists resource (every namespace) through rc in protobuf, as a
// stream: each item is decoded into newObj() and handed to each, one at a
// time. It returns the list's metadata. errNotProtobuf means the API
// server answered in another encoding, and nothing was handed to each.
func streamList[O protobufObject](ctx context.Context, rc rest.Interface, resource string, opts metav1.ListOptions, newObj func() O, each func(O) error) (metav1.ListMeta, error) {
	var lm metav1.ListMeta
	body, err := rc.Get().Resource(resource).VersionedParams(&opts, scheme.ParameterCodec).
		SetHeader("Accept", "application/vnd.kubernetes.protobuf").Stream(ctx)
	if err != nil {
		return lm, err
	}
	defer body.Close()
	r := bufio.NewReaderSize(body, 64<<10)
	prefix := make([]byte, len(protobufPrefix))
	if _, err := io.ReadFull(r, prefix); err != nil || !bytes.Equal(prefix, protobufPrefix) {
		return lm, errNotProtobuf
	}
	d := &protoReader{r: r}
	var raw *io.LimitedReader
	// The response is a runtime.Unknown whose raw field holds the list.
	for {
		field, wire, err := d.tag()
		if err == io.EOF {
			return lm, fmt.Errorf("list %s: the response holds no list", resource)
		}
		if err != nil {
			return lm, fmt.Errorf("list %s: %w", resource, err)
		}
		if field == unknownRawField && wire == wireBytes {
			size, err := binary.ReadUvarint(r)
			if err != nil {
				return lm, fmt.Errorf("list %s: %w", resource, err)
			}
			raw = &io.LimitedReader{R: r, N: int64(size)}
			d.r = bufio.NewReaderSize(raw, 64<<10)
			break
		}
		if err := d.skip(wire); err != nil {
			return lm, fmt.Errorf("list %s: %w", resource, err)
		}
	}
	// The list: its metadata and items.
	for {
		field, wire, err := d.tag()
		if err == io.EOF && raw.N > 0 {
			err = io.ErrUnexpectedEOF // the answer ended inside the list
		}
		if err == io.EOF {
			return lm, nil
		}
		if err != nil {
			return lm, fmt.Errorf("list %s: %w", resource, err)
		}
		switch {
		case field == listMetaField && wire == wireBytes:
			b, err := d.bytes()
			if err == nil {
				err = lm.Unmarshal(b)
			}
			if err != nil {
				return lm, fmt.Errorf("list %s: metadata: %w", resource, err)
			}
		case field == listItemsField && wire == wireBytes:
			b, err := d.bytes()
			o := newObj()
			if err == nil {
				err = o.Unmarshal(b)
			}
			if err != nil {
				return lm, fmt.Errorf("list %s: item: %w", resource, err)
			}
			if err := each(o); err != nil {
				return lm, err
			}
		default:
			if err := d.skip(wire); err != nil {
				return lm, fmt.Errorf("list %s: %w", resource, err)
			}
		}
	}
}

// Protobuf wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// protoReader reads protobuf fields from a stream.
type protoReader struct {
	r   *bufio.Reader
	buf []byte // reused: what bytes returns is valid until its next call
}

// maxItem bounds one item of a list (the API server's own limit on an
// object is about 1.5 MB).
const maxItem = 64 << 20

// tag reads a field's number and wire type; io.EOF at the end.
func (d *protoReader) tag() (field uint64, wire int, err error) {
	v, err := binary.ReadUvarint(d.r)
	if err != nil {
		return 0, 0, err
	}
	return v >> 3, int(v & 7), nil
}

// bytes reads a length-delimited value.
func (d *protoReader) bytes() ([]byte, error) {
	n, err := binary.ReadUvarint(d.r)
	if err != nil {
		return nil, unexpectedEOF(err)
	}
	if n > maxItem {
		return nil, fmt.Errorf("a field of %d bytes", n)
	}
	if uint64(cap(d.buf)) < n {
		d.buf = make([]byte, n)
	}
	d.buf = d.buf[:n]
	_, err = io.ReadFull(d.r, d.buf)
	return d.buf, unexpectedEOF(err)
}

// skip reads past a value of the wire type.
func (d *protoReader) skip(wire int) error {
	var err error
	switch wire {
	case wireVarint:
		_, err = binary.ReadUvarint(d.r)
	case wireFixed64:
		_, err = d.r.Discard(8)
	case wireFixed32:
		_, err = d.r.Discard(4)
	case wireBytes:
		var n uint64
		if n, err = binary.ReadUvarint(d.r); err == nil {
			_, err = io.CopyN(io.Discard, d.r, int64(n))
		}
	default:
		return fmt.Errorf("protobuf wire type %d", wire)
	}
	return unexpectedEOF(err)
}

// unexpectedEOF turns an end of stream inside a field into an error.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
