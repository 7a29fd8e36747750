package e2e

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// The harness itself: decoding must keep timestamps and float bits exact, or
// the comparisons above prove nothing.

func TestParseMillis(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"1700000000", 1700000000000, ""},
		{"1700000000.1", 1700000000100, ""},
		{"1700000000.123", 1700000000123, ""},
		{"1700000000.1234", 0, "not whole milliseconds"},
		{"1.7e9", 0, "not whole milliseconds"},
		{"x", 0, "parse timestamp"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseMillis(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestDecodeAPIResult(t *testing.T) {
	body := `{"status":"success","data":{"resultType":"matrix","result":[
		{"metric":{"__name__":"b"},"values":[[1700000000.5,"NaN"],[1700000001,"+Inf"],[1700000002,"-Inf"]]},
		{"metric":{"__name__":"a","x":"y"},"values":[[1700000000.001,"0.1"],[1700000000.002,"1e-300"],[1700000000.003,"-0"]]}]}}`
	r, err := decodeAPIResult([]byte(body))
	require.NoError(t, err)
	require.Equal(t, "matrix", r.Type)
	require.Len(t, r.Series, 2)
	require.Equal(t, `{__name__="a", x="y"}`, r.Series[0].Labels.String(), "sorted by labels")
	a, b := r.Series[0].Points, r.Series[1].Points
	require.Equal(t, []int64{1700000000001, 1700000000002, 1700000000003}, []int64{a[0].T, a[1].T, a[2].T})
	require.Equal(t, math.Float64bits(0.1), math.Float64bits(a[0].V))
	require.Equal(t, math.Float64bits(1e-300), math.Float64bits(a[1].V))
	require.Equal(t, math.Float64bits(math.Copysign(0, -1)), math.Float64bits(a[2].V), "negative zero keeps its sign")
	require.True(t, math.IsNaN(b[0].V))
	require.Equal(t, int64(1700000000500), b[0].T)
	require.True(t, math.IsInf(b[1].V, 1))
	require.True(t, math.IsInf(b[2].V, -1))

	_, err = decodeAPIResult([]byte(`{"status":"error","errorType":"bad_data","error":"x"}`))
	require.ErrorContains(t, err, `status "error"`)

	v, err := decodeAPIResult([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"2"]}]}}`))
	require.NoError(t, err)
	require.Equal(t, []point{{T: 1700000000000, V: 2}}, v.Series[0].Points)
}

func TestSameBitsAndCloseEnough(t *testing.T) {
	negZero := math.Copysign(0, -1)
	for _, tc := range []struct {
		name       string
		a, b       float64
		same, near bool
	}{
		{"equal", 1.5, 1.5, true, true},
		{"NaNs", math.NaN(), math.NaN(), true, true},
		{"NaN and number", math.NaN(), 1, false, false},
		{"zero signs", 0, negZero, false, true},
		{"within 1e-9", 1, 1 + 1e-12, false, true},
		{"beyond 1e-9", 1, 1 + 1e-8, false, false},
		{"infinities", math.Inf(1), math.Inf(1), true, true},
		{"opposite infinities", math.Inf(1), math.Inf(-1), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.same, sameBits(tc.a, tc.b), "sameBits")
			require.Equal(t, tc.near, closeEnough(tc.a, tc.b), "closeEnough")
		})
	}
}
