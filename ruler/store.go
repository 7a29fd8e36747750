package ruler

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/thanos-io/objstore"
	"gopkg.in/yaml.v3"

	"github.com/strata-metrics/strata/tenant"
)

// ErrNotFound is a namespace or group the store does not have.
var ErrNotFound = errors.New("not found")

// ErrReadOnly is a change asked of a store that cannot take it.
var ErrReadOnly = errors.New("the rules come from -ruler.rule-path and cannot be changed through the API; edit the files")

// Namespaces are one tenant's rule groups: namespace -> groups, each
// namespace's groups sorted by name.
type Namespaces map[string][]rulefmt.RuleGroup

// RuleStore is where rule groups live. Its methods are goroutine-safe;
// names reaching them were checked by checkName.
type RuleStore interface {
	// All returns every tenant's rule groups.
	All(ctx context.Context) (map[string]Namespaces, error)
	// Tenant returns one tenant's rule groups.
	Tenant(ctx context.Context, tenantID string) (Namespaces, error)
	// SetGroup stores g under namespace, replacing a group of its name.
	SetGroup(ctx context.Context, tenantID, namespace string, g rulefmt.RuleGroup) error
	// DeleteGroup removes one group; ErrNotFound when there is none.
	DeleteGroup(ctx context.Context, tenantID, namespace, group string) error
}

// rulesPrefix is the top-level prefix of rule groups in the bucket. It is
// not a valid tenant id ('@'), so that the components that list tenants
// at the top level (bucket.Tenants) never take it for one.
const rulesPrefix = "@rules"

// BucketStore keeps rule groups in the bucket, one object per group at
// @rules/<tenant>/<namespace>/<group>, namespace and group base64url
// encoded: whatever a name holds ("..", "/", any byte), its key is one
// path element of [A-Za-z0-9_-].
type BucketStore struct {
	bkt objstore.Bucket
}

// NewBucketStore returns the rule store in bkt.
func NewBucketStore(bkt objstore.Bucket) *BucketStore { return &BucketStore{bkt: bkt} }

func encodeName(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func decodeName(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return string(b), err
}

func groupKey(tenantID, namespace, group string) string {
	return rulesPrefix + "/" + tenantID + "/" + encodeName(namespace) + "/" + encodeName(group)
}

// All implements RuleStore.
func (s *BucketStore) All(ctx context.Context) (map[string]Namespaces, error) {
	var tenants []string
	err := s.bkt.Iter(ctx, rulesPrefix+"/", func(name string) error {
		id, ok := strings.CutSuffix(strings.TrimPrefix(name, rulesPrefix+"/"), "/")
		if ok && tenant.Validate(id) == nil {
			tenants = append(tenants, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list rule tenants: %w", err)
	}
	out := map[string]Namespaces{}
	for _, t := range tenants {
		ns, err := s.Tenant(ctx, t)
		if err != nil {
			return nil, err
		}
		if len(ns) > 0 {
			out[t] = ns
		}
	}
	return out, nil
}

// Tenant implements RuleStore.
func (s *BucketStore) Tenant(ctx context.Context, tenantID string) (Namespaces, error) {
	prefix := rulesPrefix + "/" + tenantID + "/"
	var keys []string
	err := s.bkt.Iter(ctx, prefix, func(name string) error {
		keys = append(keys, name)
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return nil, fmt.Errorf("list rule groups of tenant %s: %w", tenantID, err)
	}
	out := Namespaces{}
	for _, key := range keys {
		encNS, encGroup, ok := strings.Cut(strings.TrimPrefix(key, prefix), "/")
		if !ok || strings.Contains(encGroup, "/") {
			continue // not ours
		}
		ns, err1 := decodeName(encNS)
		name, err2 := decodeName(encGroup)
		if err1 != nil || err2 != nil {
			continue
		}
		g, err := s.get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		g.Name = name // the key decides, whatever the object says
		out[ns] = append(out[ns], g)
	}
	for _, gs := range out {
		slices.SortFunc(gs, func(a, b rulefmt.RuleGroup) int { return strings.Compare(a.Name, b.Name) })
	}
	return out, nil
}

func (s *BucketStore) get(ctx context.Context, key string) (rulefmt.RuleGroup, error) {
	var g rulefmt.RuleGroup
	rc, err := s.bkt.Get(ctx, key)
	if err != nil {
		if s.bkt.IsObjNotFoundErr(err) {
			return g, ErrNotFound
		}
		return g, fmt.Errorf("read rule group %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return g, fmt.Errorf("read rule group %s: %w", key, err)
	}
	if err := yaml.Unmarshal(b, &g); err != nil {
		return g, fmt.Errorf("decode rule group %s: %w", key, err)
	}
	return g, nil
}

// SetGroup implements RuleStore.
func (s *BucketStore) SetGroup(ctx context.Context, tenantID, namespace string, g rulefmt.RuleGroup) error {
	b, err := yaml.Marshal(&g)
	if err != nil {
		return fmt.Errorf("encode rule group: %w", err)
	}
	if err := s.bkt.Upload(ctx, groupKey(tenantID, namespace, g.Name), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("store rule group: %w", err)
	}
	return nil
}

// DeleteGroup implements RuleStore.
func (s *BucketStore) DeleteGroup(ctx context.Context, tenantID, namespace, group string) error {
	key := groupKey(tenantID, namespace, group)
	if ok, err := s.bkt.Exists(ctx, key); err != nil {
		return fmt.Errorf("look up rule group: %w", err)
	} else if !ok {
		return ErrNotFound
	}
	if err := s.bkt.Delete(ctx, key); err != nil && !s.bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("delete rule group: %w", err)
	}
	return nil
}

// DirStore reads rule files from a directory (-ruler.rule-path): its
// top-level files are tenant anonymous's namespaces (the file name is the
// namespace), <dir>/<tenant>/<file> those of tenant. It is read-only.
type DirStore struct {
	dir     string
	checker *checker
}

// All implements RuleStore.
func (s *DirStore) All(ctx context.Context) (map[string]Namespaces, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read -ruler.rule-path: %w", err)
	}
	out := map[string]Namespaces{}
	for _, e := range entries {
		if e.IsDir() {
			if tenant.Validate(e.Name()) != nil {
				continue
			}
			ns, err := s.Tenant(ctx, e.Name())
			if err != nil {
				return nil, err
			}
			if len(ns) > 0 {
				out[e.Name()] = ns
			}
		}
	}
	if ns, err := s.Tenant(ctx, tenant.Anonymous); err != nil {
		return nil, err
	} else if len(ns) > 0 {
		out[tenant.Anonymous] = mergeNamespaces(out[tenant.Anonymous], ns)
	}
	return out, nil
}

func mergeNamespaces(a, b Namespaces) Namespaces {
	if a == nil {
		return b
	}
	for k, v := range b {
		a[k] = v
	}
	return a
}

// Tenant implements RuleStore: for tenant anonymous the top-level files
// and those of <dir>/anonymous/.
func (s *DirStore) Tenant(_ context.Context, tenantID string) (Namespaces, error) {
	out := Namespaces{}
	read := func(dir string) error {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) && dir != s.dir {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read rule directory %s: %w", dir, err)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return fmt.Errorf("read rule file: %w", err)
			}
			rgs, err := s.checker.parseFile(b)
			if err != nil {
				return fmt.Errorf("rule file %s: %w", filepath.Join(dir, e.Name()), err)
			}
			gs := rgs.Groups
			slices.SortFunc(gs, func(a, b rulefmt.RuleGroup) int { return strings.Compare(a.Name, b.Name) })
			out[e.Name()] = gs
		}
		return nil
	}
	if tenantID == tenant.Anonymous {
		if err := read(s.dir); err != nil {
			return nil, err
		}
	}
	if err := read(filepath.Join(s.dir, tenantID)); err != nil {
		return nil, err
	}
	return out, nil
}

// SetGroup implements RuleStore: refused.
func (s *DirStore) SetGroup(context.Context, string, string, rulefmt.RuleGroup) error {
	return ErrReadOnly
}

// DeleteGroup implements RuleStore: refused.
func (s *DirStore) DeleteGroup(context.Context, string, string, string) error { return ErrReadOnly }
