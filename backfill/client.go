package backfill

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/strata-metrics/strata/blockupload"
)

// Client talks to a Strata's block upload API as one tenant.
type Client struct {
	// URL is Strata's base URL (the compactor, or -target=all).
	URL string
	// Tenant goes in X-Scope-OrgID when set; with a tenants file the
	// credentials name the tenant instead.
	Tenant string
	// BearerToken or BasicUser and BasicPassword authenticate.
	BearerToken              string
	BasicUser, BasicPassword string
	HTTP                     *http.Client
}

// ServerError is an answer other than 200: the server's message says why.
type ServerError struct {
	Status int
	Msg    string
	Op     string // what was asked: "start block X"
	// RetryAfter is the answer's Retry-After, 0 without one.
	RetryAfter time.Duration
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("%s: server answered %d: %s", e.Op, e.Status, strings.TrimSpace(e.Msg))
}

func (c *Client) do(ctx context.Context, method, op string, id ulid.ULID, what string, q url.Values, body io.Reader, size int64, out any) error {
	u := strings.TrimSuffix(c.URL, "/") + blockupload.RoutePrefix + id.String() + "/" + what
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if body != nil {
		req.ContentLength = size
	}
	if c.Tenant != "" {
		req.Header.Set("X-Scope-OrgID", c.Tenant)
	}
	switch {
	case c.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+c.BearerToken)
	case c.BasicUser != "":
		req.SetBasicAuth(c.BasicUser, c.BasicPassword)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("%s: reading the answer: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &ServerError{Status: resp.StatusCode, Msg: string(b), Op: op, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s: decoding the answer: %w", op, err)
		}
	}
	return nil
}

// Check asks what the server has of block id.
func (c *Client) Check(ctx context.Context, id ulid.ULID) (blockupload.Status, error) {
	var s blockupload.Status
	err := c.do(ctx, http.MethodGet, "check block "+id.String(), id, "check", nil, nil, 0, &s)
	return s, err
}

// Start sends block id's meta.json.
func (c *Client) Start(ctx context.Context, id ulid.ULID, meta []byte) (blockupload.Status, error) {
	var s blockupload.Status
	err := c.do(ctx, http.MethodPost, "start block "+id.String(), id, "start", nil, bytes.NewReader(meta), int64(len(meta)), &s)
	return s, err
}

// File sends size bytes of body as file p of block id.
func (c *Client) File(ctx context.Context, id ulid.ULID, p string, body io.Reader, size int64) error {
	return c.do(ctx, http.MethodPost, "upload "+p+" of block "+id.String(), id, "files", url.Values{"path": {p}}, body, size, nil)
}

// Finish asks the server to verify block id and make it visible.
func (c *Client) Finish(ctx context.Context, id ulid.ULID) error {
	return c.do(ctx, http.MethodPost, "finish block "+id.String(), id, "finish", nil, nil, 0, nil)
}

// retryAfter decodes a Retry-After header: seconds or an HTTP date; 0 when
// absent or not understood.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		return max(0, time.Duration(n)*time.Second)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now))
	}
	return 0
}
