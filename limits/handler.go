package limits

import (
	"net/http"
	"reflect"
	"time"

	"gopkg.in/yaml.v3"
)

// Handler serves GET /runtime_config: the effective limits of every tenant
// with overrides, as YAML in the format of the runtime config file
// (durations as "1m0s"). With ?mode=diff only the fields that differ from
// the defaults; the defaults themselves are under "defaults".
func (o *Overrides) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method "+r.Method+" not allowed: use GET", http.StatusMethodNotAllowed)
			return
		}
		diff := false
		switch mode := r.URL.Query().Get("mode"); mode {
		case "", "all":
		case "diff":
			diff = true
		default:
			http.Error(w, "unknown mode "+`"`+mode+`"`+": use mode=diff or no mode", http.StatusBadRequest)
			return
		}
		out, err := yaml.Marshal(o.effective(diff))
		if err != nil {
			http.Error(w, "marshal runtime config: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
		_, _ = w.Write(out)
	})
}

// effectiveConfig is what Handler serves.
type effectiveConfig struct {
	Defaults  *yaml.Node            `yaml:"defaults,omitempty"`
	Overrides map[string]*yaml.Node `yaml:"overrides"`
}

func (o *Overrides) effective(diff bool) effectiveConfig {
	set := o.cur.Load()
	ec := effectiveConfig{Overrides: make(map[string]*yaml.Node, len(set.byTenant))}
	if !diff {
		ec.Defaults = limitsNode(&o.defaults, nil)
	}
	for id, l := range set.byTenant {
		var base *Limits
		if diff {
			base = &o.defaults
		}
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
