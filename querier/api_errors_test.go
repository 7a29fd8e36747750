package querier

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/promapi"
	"github.com/strata-metrics/strata/querier/storequery"
)

// Store-gateways that cannot answer are 503 like ingesters; blocks found
// damaged with no other copy are 500 (a retry cannot help), the error
// naming them.
func TestStoreGatewayErrorClassification(t *testing.T) {
	id := ulid.MustNew(1, nil)
	down := &storequery.UnavailableError{RPC: "Series", Tenant: "t1", Blocks: []storequery.BlockFailure{
		{ID: id, Attempts: []storequery.Attempt{{Instance: "sg-1", Err: status.Error(codes.Unavailable, "connection refused")}}},
	}}
	damaged := &storequery.UnavailableError{RPC: "Series", Tenant: "t1", Blocks: []storequery.BlockFailure{
		{ID: id, DataLoss: true, Attempts: []storequery.Attempt{{Instance: "sg-1", Err: status.Error(codes.DataLoss, "checksum mismatch")}}},
	}}
	mixed := &storequery.UnavailableError{RPC: "Series", Tenant: "t1", Blocks: append(append([]storequery.BlockFailure(nil), down.Blocks...), damaged.Blocks...)}
	for _, tc := range []struct {
		name     string
		err      error
		wantType promapi.ErrorType
		wantCode int
	}{
		{"store-gateways unavailable", fmt.Errorf("expanding series: %w", down), promapi.ErrorUnavailable, http.StatusServiceUnavailable},
		{"damaged block", fmt.Errorf("expanding series: %w", damaged), promapi.ErrorInternal, http.StatusInternalServerError},
		{"damaged and unavailable blocks: a retry may pass", mixed, promapi.ErrorUnavailable, http.StatusServiceUnavailable},
		{"other", errors.New("x"), promapi.ErrorExec, http.StatusUnprocessableEntity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := returnAPIError(tc.err)
			require.Equal(t, tc.wantType, e.Type)
			require.Equal(t, tc.wantCode, e.Status())
			if tc.wantType != promapi.ErrorExec {
				require.Contains(t, e.Error(), id.String(), "the error names the block")
			}
		})
	}
}
