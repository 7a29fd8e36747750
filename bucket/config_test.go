package bucket

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func defaults(t *testing.T, args ...string) Config {
	t.Helper()
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse(args))
	return c
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"unknown backend", []string{"-blocks-storage.backend=ftp"}, `-blocks-storage.backend="ftp" is unknown`},
		{"s3 ok", []string{"-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=minio:9000", "-blocks-storage.s3.bucket-name=b"}, ""},
		{"s3 with keys", []string{"-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=minio:9000", "-blocks-storage.s3.bucket-name=b",
			"-blocks-storage.s3.access-key-id=a", "-blocks-storage.s3.secret-access-key=s", "-blocks-storage.s3.bucket-lookup-type=path"}, ""},
		{"s3 no endpoint", []string{"-blocks-storage.backend=s3", "-blocks-storage.s3.bucket-name=b"}, "-blocks-storage.s3.endpoint must be set"},
		{"s3 scheme", []string{"-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=http://minio:9000", "-blocks-storage.s3.bucket-name=b"}, "without a scheme"},
		{"s3 no bucket", []string{"-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=minio:9000"}, "-blocks-storage.s3.bucket-name must be set"},
		{"s3 key without secret", []string{"-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=e", "-blocks-storage.s3.bucket-name=b", "-blocks-storage.s3.access-key-id=a"}, "must be set together"},
		{"s3 bad lookup", []string{"-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=e", "-blocks-storage.s3.bucket-name=b", "-blocks-storage.s3.bucket-lookup-type=dns"}, `bucket-lookup-type="dns" is unknown`},
		{"gcs", []string{"-blocks-storage.backend=gcs", "-blocks-storage.gcs.bucket-name=b"}, ""},
		{"gcs no bucket", []string{"-blocks-storage.backend=gcs"}, "-blocks-storage.gcs.bucket-name must be set"},
		{"azure", []string{"-blocks-storage.backend=azure", "-blocks-storage.azure.account-name=a", "-blocks-storage.azure.container-name=c"}, ""},
		{"azure no account", []string{"-blocks-storage.backend=azure", "-blocks-storage.azure.container-name=c"}, "-blocks-storage.azure.account-name must be set"},
		{"azure no container", []string{"-blocks-storage.backend=azure", "-blocks-storage.azure.account-name=a"}, "-blocks-storage.azure.container-name must be set"},
		{"swift", []string{"-blocks-storage.backend=swift", "-blocks-storage.swift.auth-url=http://k", "-blocks-storage.swift.container-name=c"}, ""},
		{"swift no url", []string{"-blocks-storage.backend=swift", "-blocks-storage.swift.container-name=c"}, "-blocks-storage.swift.auth-url must be set"},
		{"swift no container", []string{"-blocks-storage.backend=swift", "-blocks-storage.swift.auth-url=http://k"}, "-blocks-storage.swift.container-name must be set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults(t, tc.args...)
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestResolve(t *testing.T) {
	c := defaults(t)
	c.Resolve("/data")
	require.Equal(t, filepath.Join("/data", "bucket"), c.Filesystem.Dir)

	c = defaults(t, "-blocks-storage.filesystem.dir=/elsewhere")
	c.Resolve("/data")
	require.Equal(t, "/elsewhere", c.Filesystem.Dir, "a given directory is kept")

	_, err := New(defaults(t), "test", nil, nil)
	require.ErrorContains(t, err, "Resolve was not called")
}

// Every way a configuration gets printed hides the secrets; the code
// still reads them.
func TestSecretNeverPrinted(t *testing.T) {
	const secret = "s3cr3t-value"
	c := defaults(t,
		"-blocks-storage.s3.secret-access-key="+secret,
		"-blocks-storage.azure.account-key="+secret,
		"-blocks-storage.swift.password="+secret)
	require.Equal(t, secret, c.S3.SecretAccessKey.Value())
	require.Equal(t, secret, s3Config(c.S3).SecretKey)
	require.Equal(t, secret, azureConfig(c.Azure).StorageAccountKey)
	require.Equal(t, secret, swiftConfig(c.Swift).Password)

	y, err := yaml.Marshal(c)
	require.NoError(t, err)
	j, err := json.Marshal(c)
	require.NoError(t, err)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "s3", c.S3, "key", c.S3.SecretAccessKey)

	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var d Config
	d.RegisterFlags(fs)
	require.NoError(t, fs.Set("blocks-storage.s3.secret-access-key", secret))
	var usage strings.Builder
	fs.SetOutput(&usage)
	fs.PrintDefaults()

	for name, out := range map[string]string{
		"yaml": string(y), "json": string(j), "slog": logged.String(), "usage": usage.String(),
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c), "%s": fmt.Sprintf("%s", c.S3.SecretAccessKey),
		"flag value": fs.Lookup("blocks-storage.s3.secret-access-key").Value.String(),
	} {
		require.NotContains(t, out, secret, name)
	}
	require.Contains(t, string(y), "secret_access_key: '********'")

	// A YAML file sets a secret like any string.
	var fromFile Config
	require.NoError(t, yaml.Unmarshal([]byte("s3:\n  secret_access_key: "+secret+"\n"), &fromFile))
	require.Equal(t, secret, fromFile.S3.SecretAccessKey.Value())
	require.Empty(t, Secret("").String(), "an unset secret prints as unset")
}

// The README's reference generator (cmd/strata) finds a flag's YAML path by
// the address of its field: every flag must point into Config, and every
// YAML field must have a flag.
func TestFlagsMatchFields(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	fields := map[uintptr]string{}
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			f := v.Type().Field(i)
			p := prefix + strings.Split(f.Tag.Get("yaml"), ",")[0]
			if v.Field(i).Kind() == reflect.Struct {
				walk(v.Field(i), p+".")
				continue
			}
			fields[v.Field(i).Addr().Pointer()] = p
		}
	}
	walk(reflect.ValueOf(&c).Elem(), "")
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		p, ok := fields[reflect.ValueOf(f.Value).Pointer()]
		require.True(t, ok, "flag -%s has no Config field", f.Name)
		require.Equal(t, strings.ReplaceAll(strings.TrimPrefix(f.Name, "blocks-storage."), "-", "_"), p, "flag -%s", f.Name)
	})
	require.Equal(t, len(fields), n, "every field has a flag")
}
