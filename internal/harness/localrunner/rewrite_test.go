package localrunner

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRewriteServices(t *testing.T) {
	// The fake resolver knows two Services and maps a port p to target port p+1.
	resolve := func(ref serviceRef) (string, error) {
		ips := map[string]string{"tenant-acme/acme-minio": "127.42.0.3", "tenant-acme/acme-ingest": "127.42.0.9"}
		ip, ok := ips[ref.Namespace+"/"+ref.Name]
		if !ok {
			return "", waitf("service %s/%s not found", ref.Namespace, ref.Name)
		}
		if ref.Port == 0 {
			return ip, nil
		}
		return fmt.Sprintf("%s:%d", ip, ref.Port+1), nil
	}
	tests := map[string]struct {
		in      string
		want    string
		wantErr bool
	}{
		"no service":            {in: "http://example.com:9000", want: "http://example.com:9000"},
		"host and port":         {in: "acme-minio.tenant-acme.svc:9000", want: "127.42.0.3:9001"},
		"cluster.local":         {in: "acme-minio.tenant-acme.svc.cluster.local:9000", want: "127.42.0.3:9001"},
		"url with port":         {in: "http://acme-minio.tenant-acme.svc:9000", want: "http://127.42.0.3:9001"},
		"url with path":         {in: "http://acme-minio.tenant-acme.svc.cluster.local:9000/minio/health", want: "http://127.42.0.3:9001/minio/health"},
		"http implies 80":       {in: "http://acme-minio.tenant-acme.svc/x", want: "http://127.42.0.3:81/x"},
		"https implies 443":     {in: "https://acme-minio.tenant-acme.svc", want: "https://127.42.0.3:444"},
		"bare host":             {in: "acme-minio.tenant-acme.svc", want: "127.42.0.3"},
		"flag value":            {in: "--storage=acme-minio.tenant-acme.svc:9000", want: "--storage=127.42.0.3:9001"},
		"list of two":           {in: "http://acme-minio.tenant-acme.svc:9000,http://acme-ingest.tenant-acme.svc:8080", want: "http://127.42.0.3:9001,http://127.42.0.9:8081"},
		"trailing dot sentence": {in: "see acme-minio.tenant-acme.svc.", want: "see 127.42.0.3."},
		"pod dns name left":     {in: "acme-minio-0.acme-minio.tenant-acme.svc:9000", want: "acme-minio-0.acme-minio.tenant-acme.svc:9000"},
		"other domain left":     {in: "acme-minio.tenant-acme.svc.example.com:9000", want: "acme-minio.tenant-acme.svc.example.com:9000"},
		"longer label left":     {in: "acme-minio.tenant-acme.svcx", want: "acme-minio.tenant-acme.svcx"},
		"unknown service waits": {in: "http://nope.tenant-acme.svc:9000", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := rewriteServices(tc.in, resolve)
			if tc.wantErr {
				var wait *waitError
				require.True(t, errors.As(err, &wait), "want a waitError, got %v", err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestRewritePath(t *testing.T) {
	mounts := []mount{
		{Path: "/data", Local: "/state/ns/pod/data"},
		{Path: "/data/cache/", Local: "/state/ns/pod/.run/volumes/cache"},
		{Path: "/etc/config", Local: "/state/ns/pod/.run/volumes/config"},
		{Path: "/", Local: "/never"},
	}
	tests := map[string]struct {
		in   string
		want string
	}{
		"mount path":             {in: "/data", want: "/state/ns/pod/data"},
		"under mount path":       {in: "/data/objects/a", want: "/state/ns/pod/data/objects/a"},
		"trailing slash kept":    {in: "/data/", want: "/state/ns/pod/data/"},
		"longest mount wins":     {in: "/data/cache/x", want: "/state/ns/pod/.run/volumes/cache/x"},
		"nested mount itself":    {in: "/data/cache", want: "/state/ns/pod/.run/volumes/cache"},
		"prefix is not a parent": {in: "/database", want: "/database"},
		"flag form":              {in: "--config=/etc/config/app.yaml", want: "--config=/state/ns/pod/.run/volumes/config/app.yaml"},
		"env assignment form":    {in: "DIR=/data", want: "DIR=/state/ns/pod/data"},
		"other absolute path":    {in: "/usr/bin/minio", want: "/usr/bin/minio"},
		"relative path":          {in: "data/x", want: "data/x"},
		"not a path":             {in: "server", want: "server"},
		"url is not a path":      {in: "http://host/data", want: "http://host/data"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, rewritePath(tc.in, mounts))
		})
	}
}

func TestRewritePeerServices(t *testing.T) {
	resolve := func(ref serviceRef) (string, error) {
		if ref.Namespace+"/"+ref.Name != "tenant-acme/acme-minio" {
			return "", waitf("service %s/%s not found", ref.Namespace, ref.Name)
		}
		return fmt.Sprintf("127.42.1.3:%d", ref.Port+1), nil
	}
	tests := map[string]struct{ in, want string }{
		"peer URL":                  {in: "http://acme-minio.tenant-acme.west.test:9000", want: "http://127.42.1.3:9001"},
		"own and peer in a list":    {in: "http://a.b.svc:9000,http://acme-minio.tenant-acme.west.test:9000", want: "http://a.b.svc:9000,http://127.42.1.3:9001"},
		"another plane is left":     {in: "http://acme-minio.tenant-acme.east.test:9000", want: "http://acme-minio.tenant-acme.east.test:9000"},
		"longer suffix is left":     {in: "http://acme-minio.tenant-acme.west.test.example:9000", want: "http://acme-minio.tenant-acme.west.test.example:9000"},
		"pod of a Service is left":  {in: "x.acme-minio.tenant-acme.west.test:9000", want: "x.acme-minio.tenant-acme.west.test:9000"},
		"http implies 80 in a peer": {in: "http://acme-minio.tenant-acme.west.test", want: "http://127.42.1.3:81"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := rewritePeerServices(tc.in, "west.test", resolve)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestRewritePodNames(t *testing.T) {
	n := names{
		pod: func(ref podRef) (netip.Addr, error) {
			return netip.MustParseAddr(map[string]string{"db-0": "127.42.0.1", "db-1": "127.42.0.2"}[ref.Pod]), nil
		},
		podPath: func(ref podRef, p string) string { return "/local/" + ref.Pod + p },
	}
	for in, want := range map[string]string{
		"db-0.db.ns.svc":                                    "127.42.0.1",
		"db-1.db.ns.svc.cluster.local:5432":                 "127.42.0.2:5432",
		"http://db-0.db.ns.svc.cluster.local:9000/data":     "http://127.42.0.1:9000/local/db-0/data",
		"http://db-0.db.ns.svc/d,http://db-1.db.ns.svc/d":   "http://127.42.0.1/local/db-0/d,http://127.42.0.2/local/db-1/d",
		"--peer=db-1.db.ns.svc:7000/not-a-url":              "--peer=127.42.0.2:7000/not-a-url",
		"db.ns.svc:5432":                                    "db.ns.svc:5432", // a Service's name
		"x.db-0.db.ns.svc":                                  "x.db-0.db.ns.svc",
		"db-0.db.ns.svc.example.com":                        "db-0.db.ns.svc.example.com",
		"http://db-0.db.ns.svc.cluster.local.evil.com/data": "http://db-0.db.ns.svc.cluster.local.evil.com/data",
	} {
		got, err := rewritePodNames(in, n)
		require.NoError(t, err)
		assert.Equal(t, want, got, in)
	}
}

func TestOrdinalOf(t *testing.T) {
	for pod, want := range map[string]int32{"web-0": 0, "web-12": 12} {
		got, ok := ordinalOf(pod, "web")
		assert.True(t, ok, pod)
		assert.Equal(t, want, got, pod)
	}
	for _, pod := range []string{"web", "web-", "web-01", "web-x", "web-x-0", "webs-0", "web--1"} {
		_, ok := ordinalOf(pod, "web")
		assert.False(t, ok, pod)
	}
}
