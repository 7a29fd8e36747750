package limits

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// RateMap maps names to rates (per second), in YAML a mapping and as a
// flag JSON ({"webhook": 1}). It is comparable (Limits are compared), held
// as its sorted pairs.
type RateMap struct {
	pairs string // name \xff rate \xff ..., sorted by name
}

// NewRateMap returns the map of m's pairs.
func NewRateMap(m map[string]float64) RateMap {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(0xff)
		b.WriteString(strconv.FormatFloat(m[n], 'g', -1, 64))
		b.WriteByte(0xff)
	}
	return RateMap{pairs: b.String()}
}

// Get returns name's rate and whether the map has one.
func (r RateMap) Get(name string) (float64, bool) {
	rest := r.pairs
	for rest != "" {
		n, after, _ := strings.Cut(rest, "\xff")
		v, after, _ := strings.Cut(after, "\xff")
		if n == name {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
		rest = after
	}
	return 0, false
}

// Map returns the pairs; nil for an empty map.
func (r RateMap) Map() map[string]float64 {
	if r.pairs == "" {
		return nil
	}
	m := map[string]float64{}
	rest := r.pairs
	for rest != "" {
		n, after, _ := strings.Cut(rest, "\xff")
		v, after, _ := strings.Cut(after, "\xff")
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			m[n] = f
		}
		rest = after
	}
	return m
}

func (r RateMap) validate() error {
	for n, v := range r.Map() {
		if n == "" {
			return fmt.Errorf("empty name")
		}
		if !(v >= 0) || math.IsInf(v, 1) {
			return fmt.Errorf("rate of %q must be a non-negative number, got %v", n, v)
		}
	}
	return nil
}

// MarshalYAML writes r as a mapping.
func (r RateMap) MarshalYAML() (any, error) {
	m := r.Map()
	if m == nil {
		return map[string]float64{}, nil
	}
	return m, nil
}

// UnmarshalYAML reads a mapping of names to rates.
func (r *RateMap) UnmarshalYAML(n *yaml.Node) error {
	var m map[string]float64
	if err := n.Decode(&m); err != nil {
		return err
	}
	*r = NewRateMap(m)
	return r.validate()
}

// String is the flag's value, JSON.
func (r *RateMap) String() string {
	m := r.Map()
	if m == nil {
		return "{}"
	}
	b, _ := json.Marshal(m) // floats of a validated map: no NaN or Inf
	return string(b)
}

// Set reads the flag's value, JSON.
func (r *RateMap) Set(s string) error {
	var m map[string]float64
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return fmt.Errorf(`want JSON like {"webhook": 1}: %w`, err)
	}
	v := NewRateMap(m)
	if err := v.validate(); err != nil {
		return err
	}
	*r = v
	return nil
}
