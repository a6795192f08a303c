package watch

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiwatch "k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// cached is what weft's informers keep of an API object: its normal form
// (a *policy.Pod, *policy.Namespace, ...), made once when the object
// arrives, and the three fields of metadata client-go's cache reads (its
// key and resource version). The API object itself is dropped: a pod costs
// a few hundred bytes this way, against about two kilobytes for even a
// trimmed corev1.Pod, which its normal form then doubled.
type cached[T any] struct {
	namespace, name, resourceVersion string
	normal                           T
}

// GetObjectMeta gives client-go's cache (meta.Accessor) the object's key
// and resource version.
func (o *cached[T]) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: o.namespace, Name: o.name, ResourceVersion: o.resourceVersion}
}

// GetObjectKind is runtime.Object's; a cached object has no kind of its own.
func (o *cached[T]) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject is runtime.Object's. The normal form is immutable and
// shared, as every snapshot shares it.
func (o *cached[T]) DeepCopyObject() runtime.Object {
	c := *o
	return &c
}

// apiObject is a typed API object (*corev1.Pod, ...).
type apiObject interface {
	runtime.Object
	metav1.Object
}

// listFunc lists objects (one page, as opts say) and hands each to each,
// one at a time; it returns the list's metadata.
type listFunc[O any] func(ctx context.Context, opts metav1.ListOptions, each func(O) error) (metav1.ListMeta, error)

// cachedInformer returns an informer whose cache holds the normal form
// (conv) of each object of example's type: lists (list) and watches
// (watchFn) of the objects are converted as the objects come, so that the
// full objects of a large cluster are never all in memory at once.
func cachedInformer[O apiObject, T any](client any, example O, list listFunc[O],
	watchFn func(context.Context, metav1.ListOptions) (apiwatch.Interface, error),
	conv func(O) T) cache.SharedIndexInformer {
	toCached := func(o O) runtime.Object {
		return &cached[T]{namespace: o.GetNamespace(), name: o.GetName(), resourceVersion: o.GetResourceVersion(), normal: conv(o)}
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			out := &metainternalversion.List{}
			lm, err := list(ctx, opts, func(o O) error {
				out.Items = append(out.Items, toCached(o))
				return nil
			})
			if err != nil {
				return nil, err
			}
			out.ListMeta = lm
			return out, nil
		},
		WatchFuncWithContext: watchFn,
	}
	inf := cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, client), example, cache.SharedIndexInformerOptions{})
	// Objects of watch events, and of a streamed initial list (WatchList),
	// are converted by the informer's transform.
	_ = inf.SetTransform(func(obj any) (any, error) {
		if o, ok := obj.(O); ok {
			return toCached(o), nil
		}
		return obj, nil // converted already (a list's), or a tombstone
	})
	return inf
}

// typedList is a listFunc of a clientset's List.
func typedList[O apiObject, L runtime.Object](typed func(context.Context, metav1.ListOptions) (L, error)) listFunc[O] {
	return func(ctx context.Context, opts metav1.ListOptions, each func(O) error) (metav1.ListMeta, error) {
		l, err := typed(ctx, opts)
		if err != nil {
			return metav1.ListMeta{}, err
		}
		lm, err := meta.ListAccessor(l)
		if err != nil {
			return metav1.ListMeta{}, err
		}
		err = meta.EachListItem(l, func(item runtime.Object) error {
			o, ok := item.(O)
			if !ok {
				return fmt.Errorf("a list of %T holds a %T", *new(O), item)
			}
			return each(o)
		})
		return metav1.ListMeta{ResourceVersion: lm.GetResourceVersion(), Continue: lm.GetContinue(), RemainingItemCount: lm.GetRemainingItemCount()}, err
	}
}

// builtinList is a listFunc of a built-in kind (resource, through rc): a
// stream, one item decoded at a time (streamList); the clientset's List
// (typed) when rc cannot stream (a fake clientset) or the API server does
// not answer in protobuf.
func builtinList[O protobufObject, L runtime.Object](rc rest.Interface, resource string, newObj func() O, typed func(context.Context, metav1.ListOptions) (L, error)) listFunc[O] {
	fallback := typedList[O](typed)
	if c, ok := rc.(*rest.RESTClient); !ok || c == nil {
		return fallback
	}
	return func(ctx context.Context, opts metav1.ListOptions, each func(O) error) (metav1.ListMeta, error) {
		lm, err := streamList(ctx, rc, resource, opts, newObj, each)
		if errors.Is(err, errNotProtobuf) {
			return fallback(ctx, opts, each)
		}
		return lm, err
	}
}

// normalForms returns the normal forms of the objects in an informer's
// cache.
func normalForms[T any](store cache.Store) []T {
	items := store.List()
	out := make([]T, 0, len(items))
	for _, item := range items {
		if c, ok := item.(*cached[T]); ok {
			out = append(out, c.normal)
		}
	}
	return out
}
