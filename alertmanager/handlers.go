package alertmanager

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/tenant"
)

// maxBodyBytes bounds a configuration upload when the tenant's size limit
// is off.
const maxBodyBytes = 32 << 20

// maxAPIBodyBytes bounds a request body of a tenant's Alertmanager API
// (a batch of alerts, a silence); upstream would read any size.
const maxAPIBodyBytes = 10 << 20

// ConfigHandler serves the tenant's configuration, Cortex's and Mimir's
// API: GET returns it (404 without one), POST checks and stores it (400
// naming the problem, nothing stored), DELETE removes it and stops the
// tenant's Alertmanager.
func (m *MultitenantAlertmanager) ConfigHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := m.deps.Tenants.FromHTTP(r)
		if err != nil {
			tenant.WriteError(w, err)
			return
		}
		switch r.Method {
		case http.MethodGet:
			raw, err := m.read(r.Context(), id)
			if err != nil {
				m.writeError(w, err)
				return
			}
			if raw == nil {
				http.Error(w, fmt.Sprintf("tenant %q has no alertmanager configuration", id), http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "application/yaml")
			_, _ = w.Write(raw)
		case http.MethodPost:
			limit := m.deps.Limits.For(id).AlertmanagerMaxConfigSizeBytes
			readLimit := int64(limit)
			if limit <= 0 {
				readLimit = maxBodyBytes
			}
			body, err := io.ReadAll(io.LimitReader(r.Body, readLimit+1))
			if err != nil {
				http.Error(w, fmt.Sprintf("read body: %v", err), http.StatusBadRequest)
				return
			}
			if int64(len(body)) > readLimit {
				if limit > 0 {
					m.writeError(w, badConfig("configuration is over %d bytes, limit %d (-%s, override alertmanager_max_config_size_bytes)", readLimit, limit, limits.FlagAlertmanagerMaxConfigSize))
				} else {
					m.writeError(w, badConfig("configuration is over %d bytes", readLimit))
				}
				return
			}
			if err := m.upload(r.Context(), id, body); err != nil {
				m.writeError(w, err)
				return
			}
			w.WriteHeader(http.StatusCreated)
		case http.MethodDelete:
			if err := m.deleteConfig(r.Context(), id); err != nil {
				m.writeError(w, err)
				return
			}
			w.WriteHeader(http.StatusOK)
		default:
			w.Header().Set("Allow", "GET, POST, DELETE")
			http.Error(w, "method not allowed: use GET, POST or DELETE", http.StatusMethodNotAllowed)
		}
	})
}

// heldResponse keeps a response until the handler knows whether to send it.
type heldResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (h *heldResponse) Header() http.Header { return h.header }

func (h *heldResponse) WriteHeader(code int) {
	if h.code == 0 {
		h.code = code
	}
}

func (h *heldResponse) writeTo(w http.ResponseWriter) {
	for k, v := range h.header {
		w.Header()[k] = v
	}
	w.WriteHeader(cmp.Or(h.code, http.StatusOK))
	_, _ = w.Write(h.body.Bytes())
}

func (h *heldResponse) Write(b []byte) (int, error) {
	if h.code == 0 {
		h.code = http.StatusOK
	}
	return h.body.Write(b)
}

func (m *MultitenantAlertmanager) writeError(w http.ResponseWriter, err error) {
	http.Error(w, err.Error(), httpStatus(err))
}

func httpStatus(err error) int {
	switch {
	case errors.As(err, new(*BadConfigError)):
		return http.StatusBadRequest
	case errors.As(err, new(*tenant.InvalidError)):
		return http.StatusBadRequest
	case errors.Is(err, errNoOwner), errors.Is(err, errNotSynced):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
