package alertmanager

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/proto/alertmanagerpb"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/tenant"
)

// alertsPath is where alerts are posted: Prometheus' and the ruler's
// notifier append /api/v2/alerts to the Alertmanager URL.
const alertsPath = routePrefix + "/api/v2/alerts"

// forwardedHeaders are the request headers a forwarded request keeps: the
// tenant travels in the message, credentials stay here.
var forwardedHeaders = []string{"Content-Type", "Accept"}

// grpcServer is the replica's side of the Alertmanager gRPC service.
type grpcServer struct {
	alertmanagerpb.UnimplementedAlertmanagerServer
	m *MultitenantAlertmanager
}

// GRPCServer returns the service the other replicas call: forwarded API
// requests, replicated state, the whole state of a tenant.
func (m *MultitenantAlertmanager) GRPCServer() alertmanagerpb.AlertmanagerServer {
	return grpcServer{m: m}
}

// HandleRequest serves a request another replica forwarded, here: a
// replica that does not own the tenant refuses it (Unavailable), so that
// the sender tries the next owner.
func (g grpcServer) HandleRequest(ctx context.Context, req *alertmanagerpb.HTTPRequest) (*alertmanagerpb.HTTPResponse, error) {
	id := req.GetTenant()
	if err := tenant.Validate(id); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error()) // never a bucket path from an unchecked id
	}
	if !g.m.owns(id) {
		return nil, status.Errorf(codes.Unavailable, "this alertmanager replica does not own tenant %q", id)
	}
	if !strings.HasPrefix(req.GetUrl(), routePrefix+"/") {
		return nil, status.Errorf(codes.InvalidArgument, "not an alertmanager API path: %q", req.GetUrl())
	}
	r, err := http.NewRequestWithContext(ctx, req.GetMethod(), req.GetUrl(), bytes.NewReader(req.GetBody()))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "forwarded request: %v", err)
	}
	for _, h := range req.GetHeaders() {
		r.Header[http.CanonicalHeaderKey(h.GetKey())] = h.GetValues()
	}
	res := g.m.serveLocal(r, id)
	out := &alertmanagerpb.HTTPResponse{Code: int32(res.code), Body: res.body.Bytes()}
	for k, v := range res.header {
		out.Headers = append(out.Headers, &alertmanagerpb.Header{Key: k, Values: v})
	}
	return out, nil
}

// APIHandler serves the tenant's upstream Alertmanager API under
// /alertmanager (/alertmanager/api/v2/alerts, silences, status, ...): the
// paths amtool and Grafana's Alertmanager data source use. With a ring,
// any replica takes any request: alerts go to every owner of the tenant,
// other requests to one owner (this one when it owns the tenant).
func (m *MultitenantAlertmanager) APIHandler() http.Handler {
	ui := uiHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := m.deps.Tenants.FromHTTP(r)
		if err != nil {
			tenant.WriteError(w, err)
			return
		}
		if isUIPath(r.URL.Path) {
			// ui.go: the page and its files to any tenant; its data comes
			// through the API below, for the request's tenant.
			ui.ServeHTTP(w, r)
			return
		}
		// Upstream reads whole bodies (alerts, silences): bound them.
		var body []byte
		if r.Body != nil {
			body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBodyBytes))
			if err != nil {
				http.Error(w, fmt.Sprintf("read body: %v", err), http.StatusRequestEntityTooLarge)
				return
			}
		}
		owners, sharded := m.owners(id)
		var res *heldResponse
		switch {
		case !sharded:
			res = m.serveLocal(withBody(r, body), id)
		case len(owners) == 0:
			m.metrics.noOwner.Inc()
			res = errorResponse(fmt.Errorf("%w: no healthy alertmanager replica owns tenant %q", errNoOwner, id))
		case r.Method == http.MethodPost && r.URL.Path == alertsPath:
			res = m.distribute(r, id, body, owners)
		case slices.ContainsFunc(owners, func(in ring.Instance) bool { return in.ID == m.deps.InstanceID }):
			res = m.serveLocal(withBody(r, body), id)
		default:
			res = m.forwardToOne(r, id, body, owners)
		}
		res.writeTo(w)
	})
}

var errNoOwner = errors.New("no alertmanager replica")

// PostAlerts posts alerts of tenant tenantID, the JSON body of upstream's
// POST /api/v2/alerts (what Prometheus' notifier sends), as that request
// to any replica would: to every owner of the tenant, successful when one
// took them. For a ruler in the same process, without an HTTP URL.
func (m *MultitenantAlertmanager) PostAlerts(ctx context.Context, tenantID string, body []byte) error {
	if err := tenant.Validate(tenantID); err != nil {
		return err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, alertsPath, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post alerts of tenant %q: %w", tenantID, err)
	}
	r.Header.Set("Content-Type", "application/json")
	var res *heldResponse
	owners, sharded := m.owners(tenantID)
	switch {
	case !sharded:
		res = m.serveLocal(r, tenantID)
	case len(owners) == 0:
		m.metrics.noOwner.Inc()
		return fmt.Errorf("%w: no healthy alertmanager replica owns tenant %q", errNoOwner, tenantID)
	default:
		res = m.distribute(r, tenantID, body, owners)
	}
	if res.code == http.StatusNotFound {
		return &NotConfiguredError{Tenant: tenantID}
	}
	if res.code >= 300 {
		return fmt.Errorf("post alerts of tenant %q: %d %s", tenantID, res.code, strings.TrimSpace(res.body.String()))
	}
	return nil
}

// NotConfiguredError says a tenant's alerts were posted but the tenant has
// no Alertmanager configuration (and no fallback applies): nothing can
// take them.
type NotConfiguredError struct{ Tenant string }

func (e *NotConfiguredError) Error() string {
	return fmt.Sprintf("tenant %q has no alertmanager configuration: upload one (POST /api/v1/alerts)", e.Tenant)
}

// NotConfigured reports true: the ruler counts such posts apart from
// failures.
func (e *NotConfiguredError) NotConfigured() bool { return true }

func withBody(r *http.Request, body []byte) *http.Request {
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return r
}

// distribute posts alerts to every owner of the tenant, this replica
// through a local call, and answers with the first success: one owner
// that holds an alert notifies it, and the sender posts every firing
// alert again at its resend interval, so an owner that missed it gets it
// then. A quorum would refuse alerts while owners are down, which is when
// they matter.
func (m *MultitenantAlertmanager) distribute(r *http.Request, id string, body []byte, owners []ring.Instance) *heldResponse {
	res := make([]*heldResponse, len(owners))
	var wg sync.WaitGroup
	for i, o := range owners {
		wg.Go(func() {
			if o.ID == m.deps.InstanceID {
				res[i] = m.serveLocal(withBody(r, body), id)
				return
			}
			res[i] = m.forward(r.Context(), o, r, id, body)
		})
	}
	wg.Wait()
	var first *heldResponse
	for i, rr := range res {
		if rr.code < 300 {
			first = cmp.Or(first, rr)
			continue
		}
		m.metrics.distributionFailures.Inc()
		m.log.Debug("posting alerts to an owner of the tenant", "tenant", id, "owner", owners[i].ID, "code", rr.code, "body", rr.body.String())
	}
	if first != nil {
		return first
	}
	// Every owner refused: a limit (4xx) says more than a dead replica.
	slices.SortStableFunc(res, func(a, b *heldResponse) int { return cmp.Compare(rank(a.code), rank(b.code)) })
	return res[0]
}

func rank(code int) int {
	if code >= 400 && code < 500 {
		return 0
	}
	return 1
}

// forwardToOne sends the request to the tenant's owners in turn until one
// answers without a server error.
func (m *MultitenantAlertmanager) forwardToOne(r *http.Request, id string, body []byte, owners []ring.Instance) *heldResponse {
	var last *heldResponse
	for _, o := range owners {
		last = m.forward(r.Context(), o, r, id, body)
		if last.code < 500 {
			return last
		}
		m.metrics.forwardFailures.Inc()
	}
	return last
}

// forward sends the request to owner o over gRPC.
func (m *MultitenantAlertmanager) forward(ctx context.Context, o ring.Instance, r *http.Request, id string, body []byte) *heldResponse {
	return forwardTo(ctx, m.deps.Peers, o, r, id, body)
}

// forwardTo sends the request of tenant id to replica o over gRPC.
func forwardTo(ctx context.Context, peers peerDialer, o ring.Instance, r *http.Request, id string, body []byte) *heldResponse {
	req := &alertmanagerpb.HTTPRequest{Tenant: id, Method: r.Method, Url: r.URL.RequestURI(), Body: body}
	for _, k := range forwardedHeaders {
		if v := r.Header.Values(k); len(v) > 0 {
			req.Headers = append(req.Headers, &alertmanagerpb.Header{Key: k, Values: v})
		}
	}
	conn, err := peers.Conn(o.Addr)
	if err != nil {
		return errorResponse(fmt.Errorf("dial alertmanager %s: %w", o.Addr, err))
	}
	out, err := alertmanagerpb.NewAlertmanagerClient(conn).HandleRequest(ctx, req)
	if err != nil {
		return errorResponse(fmt.Errorf("%w %s: forward to it: %v", errNoOwner, o.ID, err))
	}
	res := &heldResponse{header: http.Header{}, code: int(out.GetCode())}
	for _, h := range out.GetHeaders() {
		res.header[http.CanonicalHeaderKey(h.GetKey())] = h.GetValues()
	}
	res.body.Write(out.GetBody())
	return res
}

func errorResponse(err error) *heldResponse {
	res := &heldResponse{header: http.Header{}}
	http.Error(res, err.Error(), httpStatus(err))
	return res
}

// serveLocal serves the request with this replica's instance of tenant id.
func (m *MultitenantAlertmanager) serveLocal(r *http.Request, id string) *heldResponse {
	in, err := m.lookup(r.Context(), id)
	if err != nil {
		return errorResponse(err)
	}
	res := &heldResponse{header: http.Header{}}
	if in == nil {
		http.Error(res, fmt.Sprintf("tenant %q has no alertmanager configuration: upload one (POST /api/v1/alerts)", id), http.StatusNotFound)
		return res
	}
	if r.Method != http.MethodPost {
		in.handler.ServeHTTP(res, r)
		res.code = cmp.Or(res.code, http.StatusOK)
		return res
	}
	// A post that a limit refuses gets 400 naming it, not upstream's 500.
	var refusal error
	in.handler.ServeHTTP(res, r.WithContext(context.WithValue(r.Context(), refusalKey{}, &refusal)))
	if refusal != nil {
		res = &heldResponse{header: http.Header{}}
		http.Error(res, refusal.Error(), http.StatusBadRequest)
	}
	res.code = cmp.Or(res.code, http.StatusOK)
	return res
}
