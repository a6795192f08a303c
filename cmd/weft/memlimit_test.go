package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCgroupMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		files  map[string]string
		want   int64
		wantIn string // the file it is read from
	}{
		{
			name: "cgroup v2 in a container (cgroup namespace)",
			files: map[string]string{
				"proc/self/cgroup":          "0::/\n",
				"sys/fs/cgroup/memory.max":  "402653184\n",
				"sys/fs/cgroup/memory.high": "max\n",
			},
			want: 384 << 20, wantIn: "sys/fs/cgroup/memory.max",
		},
		{
			name: "cgroup v2 on the host: the lowest limit on the way up",
			files: map[string]string{
				"proc/self/cgroup": "0::/kubepods/pod1/weft\n",
				"sys/fs/cgroup/kubepods/pod1/weft/memory.max": "max\n",
				"sys/fs/cgroup/kubepods/pod1/memory.max":      "268435456\n",
				"sys/fs/cgroup/kubepods/memory.max":           "1073741824\n",
			},
			want: 256 << 20, wantIn: "sys/fs/cgroup/kubepods/pod1/memory.max",
		},
		{
			name: "cgroup v1",
			files: map[string]string{
				"proc/self/cgroup": "5:cpuacct,cpu:/x\n4:memory:/kubepods/weft\n0::/\n",
				"sys/fs/cgroup/memory/kubepods/weft/memory.limit_in_bytes": "402653184\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes":               "9223372036854771712\n",
			},
			want: 384 << 20, wantIn: "sys/fs/cgroup/memory/kubepods/weft/memory.limit_in_bytes",
		},
		{
			name: "cgroup v1, no limit",
			files: map[string]string{
				"proc/self/cgroup":                           "4:memory:/\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
			},
		},
		{
			name:  "no cgroup files at all",
			files: map[string]string{},
		},
		{
			name: "garbage",
			files: map[string]string{
				"proc/self/cgroup":         "nonsense\n0::/\n",
				"sys/fs/cgroup/memory.max": "lots\n",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, text := range tc.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, file := cgroupMemoryLimit(root)
			if got != tc.want {
				t.Errorf("limit %d, want %d", got, tc.want)
			}
			if tc.wantIn != "" && file != filepath.Join(root, tc.wantIn) {
				t.Errorf("read from %s, want %s", file, tc.wantIn)
			}
		})
	}
}
