package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// listServer answers GET /api/v1/pods with body as contentType, or with
// status (not 0).
func listServer(t *testing.T, contentType string, body []byte, status int) rest.Interface {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/pods" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", contentType)
		if status != 0 {
			w.WriteHeader(status)
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	c, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c.CoreV1().RESTClient()
}

func protobufOf(t *testing.T, obj runtime.Object) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(obj, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A list read as a stream gives every item, whole, and the list's
// metadata, as the API server's protobuf encoding has them.
func TestStreamListReadsEveryItem(t *testing.T) {
	list := &corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}, ListMeta: metav1.ListMeta{ResourceVersion: "4711", Continue: "next-page"}}
	for i := range 1000 {
		p := pod(fmt.Sprintf("p%d", i), fmt.Sprintf("u%d", i), fmt.Sprintf("10.32.%d.%d", i/256, i%256))
		p.Labels = map[string]string{"app": fmt.Sprint(i % 7)}
		p.Annotations = map[string]string{"big": string(bytes.Repeat([]byte{'x'}, i))}
		p.Spec.Containers = []corev1.Container{{Name: "c", Image: "i", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}}}}
		list.Items = append(list.Items, *p)
	}
	rc := listServer(t, "application/vnd.kubernetes.protobuf", protobufOf(t, list), 0)
	var got []corev1.Pod
	lm, err := streamList(context.Background(), rc, "pods", metav1.ListOptions{ResourceVersion: "0"},
		func() *corev1.Pod { return &corev1.Pod{} },
		func(p *corev1.Pod) error { got = append(got, *p); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(list.Items, got); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	if lm.ResourceVersion != "4711" || lm.Continue != "next-page" {
		t.Errorf("list metadata %+v, want resourceVersion 4711, continue next-page", lm)
	}
}

// An answer in JSON says so (the caller lists as clientsets do); an error
// of the API server is its error, as a clientset's List returns it.
func TestStreamListOtherAnswers(t *testing.T) {
	each := func(*corev1.Pod) error { t.Error("an item was handed on"); return nil }
	newPod := func() *corev1.Pod { return &corev1.Pod{} }
	rc := listServer(t, "application/json", []byte(`{"kind":"PodList","apiVersion":"v1","items":[{"metadata":{"name":"a"}}]}`), 0)
	if _, err := streamList(context.Background(), rc, "pods", metav1.ListOptions{}, newPod, each); !errors.Is(err, errNotProtobuf) {
		t.Errorf("JSON answer: error %v, want errNotProtobuf", err)
	}
	status := &metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure, Reason: metav1.StatusReasonForbidden, Code: 403, Message: "no"}
	rc = listServer(t, "application/vnd.kubernetes.protobuf", protobufOf(t, status), 403)
	if _, err := streamList(context.Background(), rc, "pods", metav1.ListOptions{}, newPod, each); !apierrors.IsForbidden(err) {
		t.Errorf("refused: error %v, want the API server's Forbidden", err)
	}
	list := protobufOf(t, &corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}, Items: []corev1.Pod{*pod("a", "u"), *pod("b", "v")}})
	for _, cut := range []int{6, 20, len(list) / 2} {
		rc = listServer(t, "application/vnd.kubernetes.protobuf", list[:len(list)-cut], 0)
		if _, err := streamList(context.Background(), rc, "pods", metav1.ListOptions{}, newPod, func(*corev1.Pod) error { return nil }); err == nil {
			t.Errorf("an answer cut %d bytes short read without error", cut)
		}
	}
}
