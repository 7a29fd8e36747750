package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	rfFile := filepath.Join(dir, "rf.yaml")
	require.NoError(t, os.WriteFile(rfFile, []byte("ring:\n  replication_factor: 2\n"), 0o644))
	targetFile := filepath.Join(dir, "target.yaml")
	require.NoError(t, os.WriteFile(targetFile, []byte("target: ingester\nblocks_storage:\n  filesystem:\n    dir: /shared/bucket\n"), 0o644))
	shared := "-blocks-storage.filesystem.dir=" + filepath.Join(dir, "bucket")
	for _, tc := range []struct {
		name    string
		args    []string
		wantRF  int
		wantErr string
	}{
		{"all defaults to rf 1", nil, 1, ""},
		{"all with rf given", []string{"-ring.replication-factor=3"}, 3, ""},
		{"all with rf in the file", []string{"-config.file=" + rfFile}, 2, ""},
		{"ingester defaults to rf 3", []string{"-target=ingester", shared}, 3, ""},
		{"distributor defaults to rf 3", []string{"-target=distributor"}, 3, ""},
		{"querier defaults to rf 3", []string{"-target=querier", shared}, 3, ""},
		{"ingester needs a shared bucket", []string{"-target=ingester"}, 0, "-target=ingester needs a bucket every ingester, querier, store-gateway and compactor shares"},
		{"querier needs a shared bucket", []string{"-target=querier"}, 0, "-target=querier needs a bucket"},
		{"store-gateway needs a shared bucket", []string{"-target=store-gateway"}, 0, "-target=store-gateway needs a bucket"},
		{"compactor needs a shared bucket", []string{"-target=compactor"}, 0, "-target=compactor needs a bucket"},
		{"alertmanager needs a shared bucket", []string{"-target=alertmanager"}, 0, "-target=alertmanager needs a bucket"},
		{"s3 is shared", []string{"-target=ingester", "-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=127.0.0.1:9000", "-blocks-storage.s3.bucket-name=b"}, 3, ""},
		{"target from the file", []string{"-config.file=" + targetFile}, 3, ""},
		{"flag wins over file", []string{"-config.file=" + rfFile, "-ring.replication-factor=5"}, 5, ""},
		{"unknown target", []string{"-target=frontend"}, 0, `-target="frontend" is unknown; want all, distributor, ingester, querier, query-frontend, store-gateway, compactor, ruler or alertmanager`},
		{"query-frontend without downstream", []string{"-target=query-frontend"}, 0, "-target=query-frontend needs -frontend.downstream-url"},
		{"deletion delay below the readers' grace", []string{"-compactor.deletion-delay=1h"}, 0, "-compactor.deletion-delay (1h0m0s) must be above"},
		{"rf 0", []string{"-target=ingester", "-ring.replication-factor=0"}, 0, "-ring.replication-factor must be at least 1"},
		{"bad bind address", []string{"-memberlist.bind-address=nohost"}, 0, `-memberlist.bind-address="nohost"`},
		{"bad join seed", []string{"-memberlist.join=[::1"}, 0, "-memberlist.join: seed"},
		{"bad instance addr", []string{"-instance.addr=x"}, 0, `-instance.addr="x" is not host:port`},
		{"no tokens", []string{"-ingester.num-tokens=0"}, 0, "-ingester.num-tokens must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := parseConfig(tc.args)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantRF, cfg.Ring.ReplicationFactor)
		})
	}
}

func TestMemberlistConfig(t *testing.T) {
	for _, tc := range []struct {
		name, target, bind, join string
		wantBind                 string
	}{
		{"all alone gossips on loopback", targetAll, ":7946", "", "127.0.0.1:7946"},
		{"all alone, 0.0.0.0", targetAll, "0.0.0.0:7000", "", "127.0.0.1:7000"},
		{"all alone, test port", targetAll, "127.0.0.1:0", "", "127.0.0.1:0"},
		{"all joining binds as told", targetAll, ":7946", "10.0.0.1:7946", ":7946"},
		{"ingester binds as told", targetIngester, ":7946", "", ":7946"},
		{"an explicit IP is kept", targetAll, "192.0.2.1:7946", "", "192.0.2.1:7946"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := parseConfig([]string{"-target=" + tc.target, "-memberlist.bind-address=" + tc.bind, "-memberlist.join=" + tc.join, "-blocks-storage.filesystem.dir=" + t.TempDir()})
			require.NoError(t, err)
			require.Equal(t, tc.wantBind, memberlistConfig(cfg).BindAddress)
		})
	}
}

func TestAdvertiseAddr(t *testing.T) {
	nonLoopback := "127.0.0.1"
	if ip := firstNonLoopbackIPv4(); ip != nil {
		nonLoopback = ip.String()
	}
	for _, tc := range []struct {
		name, target string
		listen       *net.TCPAddr
		want         string
	}{
		{"given host kept", targetIngester, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9095}, "127.0.0.1:9095"},
		{"all: loopback", targetAll, &net.TCPAddr{IP: net.IPv4zero, Port: 9095}, "127.0.0.1:9095"},
		{"all: loopback for ::", targetAll, &net.TCPAddr{IP: net.IPv6unspecified, Port: 9095}, "127.0.0.1:9095"},
		{"ingester: this machine's IPv4", targetIngester, &net.TCPAddr{IP: net.IPv6unspecified, Port: 9095}, net.JoinHostPort(nonLoopback, "9095")},
		{"distributor: this machine's IPv4", targetDistributor, &net.TCPAddr{Port: 9095}, net.JoinHostPort(nonLoopback, "9095")},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, advertiseAddr(tc.listen, tc.target)) })
	}
}

// TestGRPCListenAddress: -target=all alone serves gRPC on loopback only,
// like its gossip; other targets, and all joining a cluster, bind as told.
func TestGRPCListenAddress(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"all alone: loopback", nil, "127.0.0.1:9095"},
		{"all alone, 0.0.0.0", []string{"-server.grpc-listen-address=0.0.0.0:9200"}, "127.0.0.1:9200"},
		{"all alone, explicit IP kept", []string{"-server.grpc-listen-address=192.0.2.1:9095"}, "192.0.2.1:9095"},
		{"all joining binds as told", []string{"-memberlist.join=127.0.0.1:7946"}, ":9095"},
		{"distributor binds as told", []string{"-target=distributor"}, ":9095"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := parseConfig(tc.args)
			require.NoError(t, err)
			require.Equal(t, tc.want, cfg.Server.GRPCListenAddress)
		})
	}
}
