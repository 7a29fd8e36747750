package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-metrics/strata/internal/procs"
	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// ingesterRounds asks one ingester directly (gRPC QueryStream, as a querier
// does) which rounds of l's series it holds: series → round → present.
// The cluster tests use it to see what one replica kept across a restart,
// which the querier's merged answer cannot show.
func (l *clusterLoad) ingesterRounds(ctx context.Context, grpcAddr string) (map[int]map[int]bool, error) {
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial ingester %s: %w", grpcAddr, err)
	}
	defer conn.Close()
	stream, err := ingesterpb.NewIngesterClient(conn).QueryStream(ctx, &ingesterpb.QueryRequest{
		Tenant:   "anonymous",
		StartMs:  l.base,
		EndMs:    l.base + clusterMaxRounds*clusterStep,
		Matchers: []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_EQ, Name: "__name__", Value: l.metric}},
	})
	if err != nil {
		return nil, fmt.Errorf("query stream of %s: %w", grpcAddr, err)
	}
	out := map[int]map[int]bool{}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("receive from %s: %w", grpcAddr, err)
		}
		for _, s := range resp.GetSeries() {
			id := -1
			for _, lb := range s.GetLabels() {
				if lb.GetName() == "series" {
					id, _ = strconv.Atoi(lb.GetValue())
				}
			}
			if out[id] == nil {
				out[id] = map[int]bool{}
			}
			for _, c := range s.GetChunks() {
				chk, err := chunkenc.FromData(chunkenc.Encoding(c.GetEncoding()), c.GetData())
				if err != nil {
					return nil, fmt.Errorf("decode chunk of series %d from %s: %w", id, grpcAddr, err)
				}
				it := chk.Iterator(nil)
				for it.Next() == chunkenc.ValFloat {
					ts, _ := it.At()
					out[id][int((ts-l.base)/clusterStep)] = true
				}
				if err := it.Err(); err != nil {
					return nil, fmt.Errorf("read chunk of series %d from %s: %w", id, grpcAddr, err)
				}
			}
		}
	}
}

// requireKept fails when the ingester n held samples before its restart
// (before) that it lacks after replaying its WAL (after): an ingester must
// keep every sample it has answered with across a kill -9. (Once a known
// failure: a push appending to a series another push had just created could
// commit before the series record was logged, and the replay dropped its
// samples; ingester/push.go orders pushes that create series first.)
func requireKept(t *testing.T, n *procs.Node, before, after map[int]map[int]bool) {
	t.Helper()
	if missing := missingRounds(before, after); len(missing) > 0 {
		t.Fatalf("%s answered with samples before its restart that it lacks after its WAL replay: %s\nits log about the replay:\n%s",
			n.Name, strings.Join(missing, ", "), grepLog(n.Process().LogPath, "WAL", "wal", "nknown", "series ref"))
	}
}

// missingRounds lists (at most 10) series/round pairs of want that got lacks.
func missingRounds(want, got map[int]map[int]bool) []string {
	var out []string
	for id, rounds := range want {
		for k := range rounds {
			if !got[id][k] {
				out = append(out, fmt.Sprintf("series %d round %d", id, k))
				if len(out) == 10 {
					return out
				}
			}
		}
	}
	return out
}

// grepLog returns the lines of the log file at path that contain any of
// words (at most 40).
func grepLog(path string, words ...string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out[:min(len(out), 40)], "\n")
}
