package main

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"
)

// startService serves a trained model on a loopback test server, without
// the simulated inference times.
func startService(t *testing.T, drift float64) (*httptest.Server, *service) {
	t.Helper()
	m, heldOut := trainModel(1, 2000)
	svc := newService(m, serviceConfig{drift: drift, seed: 1, heldOut: heldOut, noSleep: true}, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(svc.handler())
	t.Cleanup(srv.Close)
	return srv, svc
}

// scrape reads /metrics, asking for the given format.
func scrape(t *testing.T, url string, accept expfmt.Format) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", string(accept))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	format := expfmt.ResponseFormat(resp.Header)
	dec := expfmt.NewDecoder(resp.Body, format)
	fams := map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		fams[mf.GetName()] = &mf
	}
	return fams, string(format)
}

// exercise makes n predictions with their feedback, and one bad request.
func exercise(t *testing.T, url string, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(42, uint64(n)))
	for range n {
		e := draw(rng)
		var p predictResponse
		status, err := postJSON(t.Context(), http.DefaultClient, url+"/predict", mustJSON(t, predictRequest{Features: e.x[:]}), &p)
		require.NoError(t, err)
		if status == http.StatusInternalServerError {
			continue // a simulated failure
		}
		require.Equal(t, http.StatusOK, status)
		status, err = postJSON(t.Context(), http.DefaultClient, url+"/feedback", mustJSON(t, feedbackRequest{ID: p.ID, Label: &e.y}), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, status)
	}
	resp, err := http.Get(url + "/predict?x1=1&x2=oops")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

// TestMetricsExposition: /metrics has the quickstart's four metrics with
// their types, in the text format every Prometheus reads.
func TestMetricsExposition(t *testing.T) {
	srv, _ := startService(t, 0)
	exercise(t, srv.URL, 50)
	fams, format := scrape(t, srv.URL, expfmt.NewFormat(expfmt.TypeTextPlain))
	require.Contains(t, format, "text/plain")
	for name, typ := range map[string]dto.MetricType{
		"model_inference_time_seconds": dto.MetricType_HISTOGRAM,
		"model_accuracy":               dto.MetricType_GAUGE,
		"prediction_count_total":       dto.MetricType_COUNTER,
		"error_rate":                   dto.MetricType_GAUGE,
		"prediction_errors_total":      dto.MetricType_COUNTER,
		"model_drift":                  dto.MetricType_GAUGE,
	} {
		require.Contains(t, fams, name)
		require.Equal(t, typ, fams[name].GetType(), name)
	}
	h := fams["model_inference_time_seconds"].Metric[0].GetHistogram()
	require.EqualValues(t, 51, h.GetSampleCount(), "50 predictions (some failed) and one bad request")
	var bounds []float64
	for _, b := range h.Bucket {
		bounds = append(bounds, b.GetUpperBound())
	}
	require.Contains(t, bounds, 1.0, "a classic bucket at the alert's 1s")

	predictions := fams["prediction_count_total"].Metric[0].GetCounter().GetValue()
	failed := 0.0
	for _, m := range fams["prediction_errors_total"].Metric {
		failed += m.GetCounter().GetValue()
	}
	require.Equal(t, 51.0, predictions+failed, "every request is a prediction or an error")
	require.InDelta(t, failed/51, fams["error_rate"].Metric[0].GetGauge().GetValue(), 1e-9)
	require.Greater(t, fams["model_accuracy"].Metric[0].GetGauge().GetValue(), 0.75, "accuracy from 50 labelled predictions")
}

// TestNativeHistogram: scraped with protobuf, the latency histogram carries
// native buckets (schema 3: a bucket factor of 1.09 for the asked 1.1)
// beside the classic ones.
func TestNativeHistogram(t *testing.T) {
	srv, _ := startService(t, 0)
	exercise(t, srv.URL, 20)
	fams, format := scrape(t, srv.URL, expfmt.NewFormat(expfmt.TypeProtoDelim))
	require.Contains(t, format, "application/vnd.google.protobuf")
	h := fams["model_inference_time_seconds"].Metric[0].GetHistogram()
	require.NotNil(t, h.Schema, "native histogram")
	require.EqualValues(t, 3, h.GetSchema())
	require.NotEmpty(t, h.PositiveSpan, "native buckets")
	var count, total int64
	for _, d := range h.PositiveDelta {
		count += d // each bucket's count is the previous one's plus its delta
		total += count
	}
	require.EqualValues(t, 21, h.GetSampleCount())
	require.EqualValues(t, h.GetSampleCount(), uint64(total)+h.GetZeroCount(), "native buckets hold every observation")
	require.NotEmpty(t, h.Bucket, "classic buckets")
}

// TestDriftLowersAccuracy: labelled feedback after POST /drift?level=0.8
// pulls model_accuracy below the alert's 80%.
func TestDriftLowersAccuracy(t *testing.T) {
	srv, _ := startService(t, 0)
	exercise(t, srv.URL, accuracyWindow)
	fams, _ := scrape(t, srv.URL, expfmt.NewFormat(expfmt.TypeTextPlain))
	require.Greater(t, fams["model_accuracy"].Metric[0].GetGauge().GetValue(), 0.85)

	resp, err := http.Post(srv.URL+"/drift?level=0.8", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	exercise(t, srv.URL, accuracyWindow)
	fams, _ = scrape(t, srv.URL, expfmt.NewFormat(expfmt.TypeTextPlain))
	require.Less(t, fams["model_accuracy"].Metric[0].GetGauge().GetValue(), 0.8)
	require.Equal(t, 0.8, fams["model_drift"].Metric[0].GetGauge().GetValue())
}

func TestHTTPErrors(t *testing.T) {
	srv, _ := startService(t, 0)
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
		wantBody                 string
	}{
		{"predict GET", "GET", "/predict?x1=1&x2=-0.5", "", 200, `"class":`},
		{"predict POST", "POST", "/predict", `{"features":[1,2]}`, 200, `"probability":`},
		{"predict missing feature", "GET", "/predict?x1=1", "", 400, "x2"},
		{"predict NaN", "GET", "/predict?x1=NaN&x2=1", "", 400, "finite"},
		{"predict three features", "POST", "/predict", `{"features":[1,2,3]}`, 400, "want 2 numbers"},
		{"predict not JSON", "POST", "/predict", `x`, 400, "decode body"},
		{"feedback unknown id", "POST", "/feedback", `{"id":999999,"label":1}`, 404, "unknown"},
		{"feedback no label", "POST", "/feedback", `{"id":1}`, 400, "label"},
		{"feedback bad label", "POST", "/feedback", `{"id":1,"label":2}`, 400, "label"},
		{"drift read", "GET", "/drift", "", 200, `{"level":0}`},
		{"drift too high", "POST", "/drift?level=1.5", "", 400, "0 to 1"},
		{"drift missing", "POST", "/drift", "", 400, "0 to 1"},
		{"drift wrong method", "PUT", "/drift?level=0.5", "", 405, ""},
		{"webhook not JSON", "POST", "/webhook", `{`, 400, "decode"},
		{"unknown path", "GET", "/nope", "", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			require.Equal(t, tc.want, resp.StatusCode, string(body))
			require.Contains(t, string(body), tc.wantBody)
		})
	}
}

// TestFeedbackOnce: a prediction takes one label; a second gets 409.
func TestFeedbackOnce(t *testing.T) {
	srv, _ := startService(t, 0)
	var p predictResponse
	status, err := postJSON(t.Context(), http.DefaultClient, srv.URL+"/predict", []byte(`{"features":[1,1]}`), &p)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	label := 1
	body := mustJSON(t, feedbackRequest{ID: p.ID, Label: &label})
	status, err = postJSON(t.Context(), http.DefaultClient, srv.URL+"/feedback", body, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, status)
	status, err = postJSON(t.Context(), http.DefaultClient, srv.URL+"/feedback", body, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, status)
}

// TestWebhookReceiver: an Alertmanager notification is kept and listed.
func TestWebhookReceiver(t *testing.T) {
	srv, _ := startService(t, 0)
	note := `{"version":"4","status":"firing","receiver":"ml-model-webhook","alerts":[
		{"status":"firing","labels":{"alertname":"ModelAccuracyLow","job":"ml-model"},"annotations":{"summary":"low"},"startsAt":"2026-01-02T03:04:05Z"}]}`
	resp, err := http.Post(srv.URL+"/webhook", "application/json", strings.NewReader(note))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	resp, err = http.Get(srv.URL + "/webhook")
	require.NoError(t, err)
	defer resp.Body.Close()
	var got struct {
		Total  int            `json:"total"`
		Alerts []notification `json:"alerts"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	require.Equal(t, 1, got.Total)
	require.Equal(t, "ModelAccuracyLow", got.Alerts[0].Labels["alertname"])
	require.Equal(t, "firing", got.Alerts[0].Status)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
