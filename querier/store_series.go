package querier

import (
	"context"
	"errors"
	"io"

	"github.com/strata-metrics/strata/proto/storepb"
)

// readStoreSeries reads one store-gateway's Series stream to the end, with
// the reader of the ingesters' answers (seriesReader): the series, the
// blocks queried and those that failed.
func readStoreSeries(ctx context.Context, c storepb.StoreGatewayClient, req *storepb.SeriesRequest, mint, maxt int64) (streamAnswer, []string, []*storepb.BlockError, error) {
	stream, err := c.Series(ctx, req)
	if err != nil {
		return streamAnswer{}, nil, nil, err
	}
	r := seriesReader{from: "store-gateway", replica: storeReplica, mint: mint, maxt: maxt}
	var (
		queried []string
		failed  []*storepb.BlockError
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return streamAnswer{}, nil, nil, err
		}
		if err := r.add(resp.GetSeries()); err != nil {
			return streamAnswer{}, nil, nil, err
		}
		queried = append(queried, resp.GetQueriedBlocks()...)
		failed = append(failed, resp.GetBlockErrors()...)
	}
	return r.answer(), queried, failed, nil
}

// readStoreLabels reads one store-gateway's Series stream asked with
// skip_chunks: label sets only.
func readStoreLabels(ctx context.Context, c storepb.StoreGatewayClient, req *storepb.SeriesRequest) ([]labelsSeries, []string, []*storepb.BlockError, error) {
	stream, err := c.Series(ctx, req)
	if err != nil {
		return nil, nil, nil, err
	}
	var (
		r       labelsReader
		queried []string
		failed  []*storepb.BlockError
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, nil, err
		}
		for _, ss := range resp.GetSeries() {
			r.add(ss.GetLabels())
		}
		queried = append(queried, resp.GetQueriedBlocks()...)
		failed = append(failed, resp.GetBlockErrors()...)
	}
	return r.result(), queried, failed, nil
}
