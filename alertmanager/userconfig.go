package alertmanager

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"
	"gopkg.in/yaml.v3"

	"github.com/strata-metrics/strata/limits"
)

// UserConfig is the body of the configuration API, Cortex's and Mimir's:
// upstream's configuration as a string and the templates it uses by name.
type UserConfig struct {
	TemplateFiles      map[string]string `yaml:"template_files"`
	AlertmanagerConfig string            `yaml:"alertmanager_config"`
}

// BadConfigError is a configuration a tenant must fix: 400.
type BadConfigError struct{ Reason string }

func (e *BadConfigError) Error() string { return e.Reason }

func badConfig(format string, args ...any) error {
	return &BadConfigError{Reason: fmt.Sprintf(format, args...)}
}

// decodeUserConfig reads the API body. Unknown fields are errors: a
// misspelt template_files would otherwise store a configuration without
// its templates.
func decodeUserConfig(body []byte) (UserConfig, error) {
	var uc UserConfig
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(&uc); err != nil {
		if errors.Is(err, io.EOF) {
			return uc, badConfig("empty body: want YAML with alertmanager_config and template_files")
		}
		return uc, badConfig("decode configuration: %v", err)
	}
	if strings.TrimSpace(uc.AlertmanagerConfig) == "" {
		return uc, badConfig("alertmanager_config is empty")
	}
	return uc, nil
}

// encodeUserConfig is what the bucket stores and GET returns.
func encodeUserConfig(uc UserConfig) ([]byte, error) {
	return yaml.Marshal(uc)
}

// checkPolicy is what the operator allows a tenant's configuration.
type checkPolicy struct {
	limits          *limits.Limits
	allowFileFields bool
	// resolve looks up a receiver's host name for the firewall; nil skips
	// host names (literal addresses are still checked).
	resolve func(ctx context.Context, host string) ([]net.IP, error)
}

// parsed is a tenant's configuration, checked and ready to run.
type parsed struct {
	user UserConfig
	am   *config.Config
	tmpl *template.Template
}

// checkUserConfig checks everything a tenant's configuration can be
// refused for, so that what is stored always loads: the limits, the
// upstream configuration, the templates, *_file fields and receivers on
// forbidden addresses.
func checkUserConfig(ctx context.Context, uc UserConfig, p checkPolicy) (*parsed, error) {
	l := p.limits
	if n := l.AlertmanagerMaxTemplatesCount; n > 0 && len(uc.TemplateFiles) > n {
		return nil, badConfig("%d template files, limit %d (-%s, override alertmanager_max_templates_count)", len(uc.TemplateFiles), n, limits.FlagAlertmanagerMaxTemplates)
	}
	names := make([]string, 0, len(uc.TemplateFiles))
	for name, body := range uc.TemplateFiles {
		if err := checkTemplateName(name); err != nil {
			return nil, err
		}
		if n := l.AlertmanagerMaxTemplateSizeBytes; n > 0 && len(body) > n {
			return nil, badConfig("template file %q is %d bytes, limit %d (-%s, override alertmanager_max_template_size_bytes)", name, len(body), n, limits.FlagAlertmanagerMaxTemplateSize)
		}
		names = append(names, name)
	}
	slices.Sort(names)

	fields, err := scalarFields(uc.AlertmanagerConfig)
	if err != nil {
		return nil, badConfig("alertmanager_config: %v", err)
	}
	if !p.allowFileFields {
		for _, f := range fields {
			if strings.HasSuffix(f.key, "_file") && f.value != "" {
				return nil, badConfig("alertmanager_config: %s: fields naming local files are not allowed (the operator enables them with -alertmanager.receivers-allow-file-fields)", f.path)
			}
		}
	}
	am, err := config.Load(uc.AlertmanagerConfig)
	if err != nil {
		return nil, badConfig("alertmanager_config: %v", err)
	}
	if !p.allowFileFields {
		for i, rcv := range am.Receivers {
			for j, c := range rcv.SNSConfigs {
				// Without keys of its own the AWS SDK takes the process'
				// credentials (environment, ~/.aws, the instance's role).
				if c.Sigv4.AccessKey == "" || c.Sigv4.SecretKey == "" || c.Sigv4.Profile != "" {
					return nil, badConfig("alertmanager_config: receivers[%d].sns_configs[%d].sigv4: needs its own access_key and secret_key and no profile (the process' AWS credentials are not lent to tenants; the operator allows it with -alertmanager.receivers-allow-file-fields)", i, j)
				}
			}
		}
	}
	for i, glob := range am.Templates {
		// A name or glob of template_files, as in Mimir (every template
		// file is parsed); a path would read the process' disk.
		if strings.ContainsAny(glob, "/\\") {
			return nil, badConfig("alertmanager_config: templates[%d]: %q is a path; name template_files only (local files are not read)", i, glob)
		}
	}
	tmpl, err := template.FromGlobs(nil)
	if err != nil {
		return nil, fmt.Errorf("load default templates: %w", err)
	}
	for _, name := range names {
		if err := tmpl.Parse(strings.NewReader(uc.TemplateFiles[name])); err != nil {
			return nil, badConfig("template file %q: %v", name, err)
		}
	}
	if !l.AlertmanagerReceiversAllowPrivate {
		for _, f := range fields {
			if err := checkReceiverAddress(ctx, f, p.resolve); err != nil {
				return nil, err
			}
		}
	}
	return &parsed{user: uc, am: am, tmpl: tmpl}, nil
}

// checkTemplateName allows a plain file name only: the name is a key, but
// tools write it to disk.
func checkTemplateName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return badConfig("template file name %q is not allowed", name)
	case len(name) > 255:
		return badConfig("template file name %.32q... is %d bytes, limit 255", name, len(name))
	case strings.ContainsAny(name, "/\\\x00"):
		return badConfig("template file name %q must not contain a path separator", name)
	}
	return nil
}

// field is one scalar value of a YAML mapping, where it is.
type field struct {
	path, key, value string
}

// scalarFields lists every scalar value of a mapping in the document, with
// its path (receivers[0].webhook_configs[1].url), so that a refusal names
// the field to fix.
func scalarFields(doc string) ([]field, error) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		return nil, err
	}
	var out []field
	var refused error
	var walk func(n *yaml.Node, path string, depth int)
	walk = func(n *yaml.Node, path string, depth int) {
		if refused != nil {
			return
		}
		if depth > 64 {
			refused = fmt.Errorf("%s: nested more than 64 levels deep", path)
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path, depth+1)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, path+"["+strconv.Itoa(i)+"]", depth+1)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if v.Kind == yaml.ScalarNode {
					out = append(out, field{path: p, key: k.Value, value: v.Value})
					continue
				}
				walk(v, p, depth+1)
			}
		case yaml.AliasNode:
			// An alias puts a value where this walk does not see it under
			// its key (a password_file: *path, a smarthost: *host), and
			// config.Load resolves it: refused, so that every field is
			// checked where it is used.
			refused = fmt.Errorf("%s: YAML aliases (*name) are not allowed; write the value out", cmp.Or(path, "document"))
		}
	}
	walk(&root, "", 0)
	if refused != nil {
		return nil, refused
	}
	return out, nil
}

// checkReceiverAddress refuses a URL or SMTP smarthost on an address the
// firewall forbids. Dialing checks every HTTP notifier again (the name may
// resolve elsewhere later); the smarthost is checked only here, as
// upstream's e-mail notifier dials on its own.
func checkReceiverAddress(ctx context.Context, f field, resolve func(context.Context, string) ([]net.IP, error)) error {
	var host string
	switch {
	case f.key == "url" || strings.HasSuffix(f.key, "_url"):
		u, err := url.Parse(f.value)
		if err != nil || u.Host == "" {
			return nil // config.Load judged the URL already
		}
		host = u.Hostname()
	case f.key == "smarthost" || f.key == "smtp_smarthost":
		h, _, err := net.SplitHostPort(f.value)
		if err != nil {
			return nil
		}
		host = h
	default:
		return nil
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else if resolve != nil {
		found, err := resolve(ctx, host)
		if err != nil {
			if f.key == "smarthost" || f.key == "smtp_smarthost" {
				// Upstream's e-mail notifier dials on its own, past the
				// firewall's dialer: its smarthost must be judged here.
				return badConfig("alertmanager_config: %s: %q does not resolve (%v); a receiver's SMTP smarthost must resolve to an address receivers may reach", f.path, host, err)
			}
			return nil // an HTTP receiver: the firewall's dialer decides
		}
		ips = found
	}
	for _, ip := range ips {
		if forbiddenIP(ip) {
			return badConfig("alertmanager_config: %s: %s is a %s address, which receivers may not reach (the operator allows it with -%s or the override alertmanager_receivers_firewall_allow_private)", f.path, ip, ipClass(ip), limits.FlagAlertmanagerFirewallAllowPriv)
		}
	}
	return nil
}
