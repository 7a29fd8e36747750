package limits

import (
	"net/http"
	"reflect"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/strata-metrics/strata/tenant"
)

// Handler serves GET /runtime_config: the defaults and the effective
// limits of the tenants with overrides, as YAML in the format of the
// runtime config file (durations as "1m0s"). With ?mode=diff only the
// fields that differ from the defaults, and no defaults.
//
// Which tenants it shows depends on who asks, so that one customer never
// learns another's id or limits:
//   - multi-tenancy off (tenants has neither MultitenancyEnabled nor Auth):
//     there is one tenant and the operator is its customer: every entry;
//   - otherwise the request's tenant, resolved by tenants (from the
//     credentials with -auth.tenants-file, else from X-Scope-OrgID as set
//     by a gateway), sees the defaults and its own entry only; a request
//     without a valid tenant gets tenant.FromHTTP's 401 or 400;
//   - the tenant of -runtime-config.admin-tenant, when set, sees every
//     entry (the operator's credentials, or the gateway's header for its
//     operators).
func (o *Overrides) Handler(tenants tenant.Resolver) http.Handler {
	multitenant := tenants.MultitenancyEnabled || tenants.Auth != nil
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method "+r.Method+" not allowed: use GET", http.StatusMethodNotAllowed)
			return
		}
		v := view{all: !multitenant}
		if multitenant {
			id, err := tenants.FromHTTP(r)
			if err != nil {
				tenant.WriteError(w, err)
				return
			}
			v.all, v.tenant = o.cfg.AdminTenant != "" && id == o.cfg.AdminTenant, id
		}
		switch mode := r.URL.Query().Get("mode"); mode {
		case "", "all":
		case "diff":
			v.diff = true
		default:
			http.Error(w, "unknown mode "+`"`+mode+`"`+": use mode=diff or no mode", http.StatusBadRequest)
			return
		}
		out, err := yaml.Marshal(o.effective(v))
		if err != nil {
			http.Error(w, "marshal runtime config: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
		// The answer depends on the caller: no shared cache may keep it.
		w.Header().Set("Cache-Control", "private, no-store")
		_, _ = w.Write(out)
	})
}

// view is what one request to Handler may see.
type view struct {
	diff   bool   // only the fields that differ from the defaults
	all    bool   // every tenant's entry
	tenant string // without all: the one tenant whose entry is shown
}

// effectiveConfig is what Handler serves.
type effectiveConfig struct {
	Defaults  *yaml.Node            `yaml:"defaults,omitempty"`
	Overrides map[string]*yaml.Node `yaml:"overrides"`
}

func (o *Overrides) effective(v view) effectiveConfig {
	set := o.cur.Load()
	ec := effectiveConfig{Overrides: map[string]*yaml.Node{}}
	if !v.diff {
		ec.Defaults = limitsNode(&o.defaults, nil)
	}
	var base *Limits
	if v.diff {
		base = &o.defaults
	}
	if !v.all {
		if l, ok := set.byTenant[v.tenant]; ok {
			ec.Overrides[v.tenant] = limitsNode(l, base)
		}
		return ec
	}
	for id, l := range set.byTenant {
		ec.Overrides[id] = limitsNode(l, base)
	}
	return ec
}

// limitsNode renders l as a YAML mapping in field order, leaving out the
// fields equal to base's when base is not nil. Durations are written as
// Go duration strings, which ParseOverrides reads back.
func limitsNode(l, base *Limits) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	v := reflect.ValueOf(l).Elem()
	var bv reflect.Value
	if base != nil {
		bv = reflect.ValueOf(base).Elem()
	}
	for i, name := range yamlFields {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				continue // not overridden: the component's own flag applies
			}
			f = f.Elem()
		} else if base != nil && f.Equal(bv.Field(i)) {
			continue
		}
		val := &yaml.Node{}
		if d, ok := f.Interface().(time.Duration); ok {
			val.SetString(d.String())
		} else if err := val.Encode(f.Interface()); err != nil {
			val.SetString(err.Error()) // cannot happen: ints, floats, strings
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: name}, val)
	}
	return n
}
