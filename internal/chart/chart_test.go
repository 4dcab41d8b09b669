package chart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/herald-notify/herald/internal/config"
)

// chartDir is the chart under test, relative to this package.
const chartDir = "../../charts/herald"

// fullValues turns every optional part on (KEDA, ServiceMonitor, dashboard, existingSecret).
const fullValues = chartDir + "/ci/full-values.yaml"

// secretVars are the variables that must come from the Secret, never the ConfigMap. Which
// variables are secret is a decision, so this list is explicit; TestConfigVars checks that
// each one exists in config.Config.
var secretVars = []string{
	"HERALD_WHITE_TOKEN", "HERALD_WHITE_APP_SECRET", "HERALD_WHITE_VERIFY_TOKEN", "HERALD_GREY_TOKEN",
	"HERALD_GREY_WEBHOOK_TOKEN", "HERALD_SMS_PASSWORD", "HERALD_SMS_SMPP_PASSWORD", "HERALD_API_KEYS",
	"HERALD_REDIS_URL", "HERALD_SMS_DLR_SECRET", "HERALD_ADMIN_KEYS",
}

// componentSecrets are the secret variables each Deployment may see: the worker the
// provider credentials it sends with (and the DLR secret it signs report URLs with), the
// API the keys and webhook secrets it checks requests with. Every secret variable is in at
// least one; TestConfigVars checks that.
var componentSecrets = map[string][]string{
	"worker": {"HERALD_REDIS_URL", "HERALD_WHITE_TOKEN", "HERALD_GREY_TOKEN", "HERALD_SMS_PASSWORD", "HERALD_SMS_SMPP_PASSWORD", "HERALD_SMS_DLR_SECRET"},
	"api":    {"HERALD_REDIS_URL", "HERALD_API_KEYS", "HERALD_ADMIN_KEYS", "HERALD_WHITE_APP_SECRET", "HERALD_WHITE_VERIFY_TOKEN", "HERALD_GREY_WEBHOOK_TOKEN", "HERALD_SMS_DLR_SECRET"},
}

// natsCredsVar is a file mounted from the Secret, the variable holding its path.
const natsCredsVar = "HERALD_NATS_CREDS"

// cliOnlyVars configure the herald CLI talking to a running API (config.Config.APIURL,
// APIKey); the pods never read them, so the chart must not carry them.
var cliOnlyVars = []string{"HERALD_API_URL", "HERALD_API_KEY"}

// chartDefaults are the variables whose chart default deliberately differs from the code's.
var chartDefaults = map[string]string{
	// Herald has no default (nats.go's localhost); in a cluster NATS is the official
	// chart's Service (README, step 1).
	"HERALD_NATS_URL": "nats://nats.nats.svc.cluster.local:4222",
	// The chart expects a 3-node JetStream cluster; the code's 1 suits a single server.
	"HERALD_STREAM_REPLICAS": "3",
	// Explicit rather than derived by the worker, because the README's drain story
	// (redelivery after HERALD_ACK_WAIT) quotes it.
	"HERALD_ACK_WAIT": "1m",
	// The pods' ops port: probes and the ServiceMonitor reach health and metrics there, apart
	// from the API's public port (the code's default serves no metrics on an API).
	"HERALD_OPS_ADDR": ":9090",
}

// configEnv returns every variable of config.Config (its envconfig tag) with the default
// the code applies (its default tag, "" where there is none).
func configEnv(t *testing.T) map[string]string {
	t.Helper()
	vars := map[string]string{}
	typ := reflect.TypeFor[config.Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, ok := f.Tag.Lookup("envconfig")
		if !ok {
			continue
		}
		if !strings.HasPrefix(name, "HERALD_") {
			t.Fatalf("config.Config.%s: envconfig tag %q lacks the HERALD_ prefix", f.Name, name)
		}
		if _, dup := vars[name]; dup {
			t.Fatalf("config.Config: %s is the tag of two fields", name)
		}
		vars[name] = f.Tag.Get("default")
	}
	if len(vars) == 0 {
		t.Fatal("config.Config has no envconfig tags")
	}
	return vars
}

// configVars are the variables the ConfigMap must carry, each with the default the chart
// must render: every variable of config.Config except the secret and CLI-only ones, with
// the code's default unless chartDefaults overrides it.
func configVars(t *testing.T) map[string]string {
	t.Helper()
	vars := configEnv(t)
	for _, name := range slices.Concat(secretVars, cliOnlyVars, []string{natsCredsVar}) {
		delete(vars, name)
	}
	for name, def := range chartDefaults {
		vars[name] = def
	}
	return vars
}

// TestConfigVars checks the hand-kept lists against config.Config and the chart's values
// and schema, so a variable added to the code cannot be forgotten by the chart.
func TestConfigVars(t *testing.T) {
	t.Parallel()
	code := configEnv(t)

	kinds := map[string]string{} // variable -> which list names it
	claim := func(list string, names ...string) {
		for _, name := range names {
			if _, ok := code[name]; !ok {
				t.Errorf("%s lists %s, which config.Config does not have", list, name)
			}
			if prev, ok := kinds[name]; ok {
				t.Errorf("%s is in both %s and %s", name, prev, list)
			}
			kinds[name] = list
		}
	}
	claim("secretVars", secretVars...)
	for _, name := range secretVars {
		if !slices.Contains(componentSecrets["worker"], name) && !slices.Contains(componentSecrets["api"], name) {
			t.Errorf("secret %s reaches neither Deployment (componentSecrets)", name)
		}
	}
	claim("natsCredsVar", natsCredsVar)
	claim("cliOnlyVars", cliOnlyVars...)
	for name, def := range chartDefaults {
		claim("chartDefaults", name)
		if code[name] == def {
			t.Errorf("chartDefaults[%s] = %q is the code's default: drop the exception", name, def)
		}
	}

	values := readValues(t)
	wantConfig := slices.Sorted(maps.Keys(configVars(t)))
	if missing, extra := setDiff(maps.Keys(values.Config), wantConfig); len(missing)+len(extra) > 0 {
		t.Errorf("values.yaml config: missing %v, not non-secret variables of config.Config %v", missing, extra)
	}
	wantSecrets := slices.Sorted(slices.Values(append(slices.Clone(secretVars), natsCredsVar)))
	if missing, extra := setDiff(maps.Keys(values.Secrets), wantSecrets); len(missing)+len(extra) > 0 {
		t.Errorf("values.yaml secrets: missing %v, not secret variables %v", missing, extra)
	}

	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	type props struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	var schema struct {
		Properties struct {
			Config struct {
				props
				PropertyNames struct {
					Not struct {
						Enum []string `json:"enum"`
					} `json:"not"`
				} `json:"propertyNames"`
			} `json:"config"`
			Secrets props `json:"secrets"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	if missing, extra := setDiff(maps.Keys(schema.Properties.Config.Properties), wantConfig); len(missing)+len(extra) > 0 {
		t.Errorf("schema config properties: missing %v, not non-secret variables of config.Config %v", missing, extra)
	}
	if missing, extra := setDiff(maps.Keys(schema.Properties.Secrets.Properties), wantSecrets); len(missing)+len(extra) > 0 {
		t.Errorf("schema secrets properties: missing %v, not secret variables %v", missing, extra)
	}
	refused := schema.Properties.Config.PropertyNames.Not.Enum
	for _, name := range wantSecrets {
		if !slices.Contains(refused, name) {
			t.Errorf("the schema does not refuse secret %s under config", name)
		}
	}
}

// setDiff returns the names of want missing from got, and those of got not in want.
func setDiff(got iter.Seq[string], want []string) (missing, extra []string) {
	have := slices.Sorted(got)
	for _, w := range want {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	for _, h := range have {
		if !slices.Contains(want, h) {
			extra = append(extra, h)
		}
	}
	return missing, extra
}

// chartValues is the part of values.yaml TestConfigVars reads.
type chartValues struct {
	Config  map[string]any `yaml:"config"`
	Secrets map[string]any `yaml:"secrets"`
}

func readValues(t *testing.T) chartValues {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v chartValues
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	return v
}

// TestChartSecret checks that every secret variable given in secrets: lands in the
// chart-made Secret under its own name, and nowhere in the ConfigMap.
func TestChartSecret(t *testing.T) {
	t.Parallel()
	var args []string
	for _, name := range secretVars {
		args = append(args, "--set-string", "secrets."+name+"=value-of-"+name)
	}
	m := render(t, args...)
	var s secret
	m.mustGet(t, "Secret", "r-herald").decode(t, &s)
	var cm configMap
	m.mustGet(t, "ConfigMap", "r-herald").decode(t, &cm)
	for _, name := range secretVars {
		if got, want := s.StringData[name], "value-of-"+name; got != want {
			t.Errorf("Secret %s = %q, want %q", name, got, want)
		}
		for k, v := range cm.Data {
			if strings.Contains(v, "value-of-"+name) {
				t.Errorf("ConfigMap %s carries the value of secret %s", k, name)
			}
		}
	}
}

// exportedMetrics are the Prometheus names Herald (and the NATS exporter) export; the
// dashboard may query nothing else.
var exportedMetrics = []string{
	"herald_jobs_total", "herald_sends_total", "herald_send_duration_seconds", "herald_jobs_in_flight",
	"herald_retries_total", "herald_fallbacks_total", "herald_dead_letters_total", "herald_webhooks_total",
	"herald_status_events_total", "herald_limiter_waits_total", "herald_limiter_wait_seconds",
	"herald_jobs_waiting", "herald_sender_rate", "herald_breaker_state", "herald_sender_usable",
	"nats_consumer_num_pending", "nats_stream_total_messages",
}

// helmPath finds helm once for the whole package.
var helmPath = sync.OnceValues(func() (string, error) {
	if p := os.Getenv("HELM"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "helm")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", errors.New("helm not found: run make test (it installs helm with go install helm.sh/helm/v3/cmd/helm@v3.22.0)")
})

// runHelm runs helm with its state directories in a temporary directory, so the test
// neither reads nor writes the user's helm configuration.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	helm, err := helmPath()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// object is one rendered manifest: its identity plus its JSON form for typed decoding.
type object struct {
	Kind     string
	Name     string
	Labels   map[string]string
	raw      []byte
	document map[string]any
}

func (o object) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(o.raw, v); err != nil {
		t.Fatalf("%s/%s: %v", o.Kind, o.Name, err)
	}
}

type manifests []object

// render runs helm template with the release name "r" and decodes every document.
func render(t *testing.T, args ...string) manifests {
	t.Helper()
	out, err := runHelm(t, append([]string{"template", "r", chartDir}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var objs manifests
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template output is not YAML: %v", err)
		}
		if doc == nil {
			continue
		}
		raw, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("manifest has non-JSON YAML: %v", err)
		}
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, object{Kind: head.Kind, Name: head.Metadata.Name, Labels: head.Metadata.Labels, raw: raw, document: doc})
	}
	if len(objs) == 0 {
		t.Fatal("helm template rendered nothing")
	}
	return objs
}

// get returns the object of that kind and name, or false.
func (m manifests) get(kind, name string) (object, bool) {
	for _, o := range m {
		if o.Kind == kind && o.Name == name {
			return o, true
		}
	}
	return object{}, false
}

func (m manifests) mustGet(t *testing.T, kind, name string) object {
	t.Helper()
	o, ok := m.get(kind, name)
	if !ok {
		var have []string
		for _, o := range m {
			have = append(have, o.Kind+"/"+o.Name)
		}
		t.Fatalf("no %s/%s rendered; have %v", kind, name, have)
	}
	return o
}

func (m manifests) count(kind string) int {
	n := 0
	for _, o := range m {
		if o.Kind == kind {
			n++
		}
	}
	return n
}

// The subset of the Kubernetes types the checks read.
type (
	deployment struct {
		Spec struct {
			Replicas *int `json:"replicas"`
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Template struct {
				Metadata struct {
					Labels map[string]string `json:"labels"`
				} `json:"metadata"`
				Spec podSpec `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	podSpec struct {
		TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds"`
		SecurityContext               struct {
			RunAsNonRoot   *bool  `json:"runAsNonRoot"`
			RunAsUser      *int64 `json:"runAsUser"`
			SeccompProfile *struct {
				Type string `json:"type"`
			} `json:"seccompProfile"`
		} `json:"securityContext"`
		Containers []container `json:"containers"`
		Volumes    []struct {
			Name   string `json:"name"`
			Secret *struct {
				SecretName string `json:"secretName"`
				Items      []struct {
					Key  string `json:"key"`
					Path string `json:"path"`
				} `json:"items"`
			} `json:"secret"`
		} `json:"volumes"`
	}
	container struct {
		Name  string   `json:"name"`
		Image string   `json:"image"`
		Args  []string `json:"args"`
		Ports []struct {
			Name          string `json:"name"`
			ContainerPort int    `json:"containerPort"`
		} `json:"ports"`
		EnvFrom []struct {
			ConfigMapRef *struct {
				Name string `json:"name"`
			} `json:"configMapRef"`
		} `json:"envFrom"`
		Env []struct {
			Name      string `json:"name"`
			Value     string `json:"value"`
			ValueFrom *struct {
				SecretKeyRef *struct {
					Name string `json:"name"`
					Key  string `json:"key"`
				} `json:"secretKeyRef"`
			} `json:"valueFrom"`
		} `json:"env"`
		LivenessProbe  *probe `json:"livenessProbe"`
		ReadinessProbe *probe `json:"readinessProbe"`
		Resources      struct {
			Requests map[string]any `json:"requests"`
			Limits   map[string]any `json:"limits"`
		} `json:"resources"`
		SecurityContext struct {
			RunAsNonRoot             *bool  `json:"runAsNonRoot"`
			RunAsUser                *int64 `json:"runAsUser"`
			ReadOnlyRootFilesystem   *bool  `json:"readOnlyRootFilesystem"`
			AllowPrivilegeEscalation *bool  `json:"allowPrivilegeEscalation"`
			Capabilities             struct {
				Drop []string `json:"drop"`
			} `json:"capabilities"`
			SeccompProfile *struct {
				Type string `json:"type"`
			} `json:"seccompProfile"`
		} `json:"securityContext"`
		VolumeMounts []struct {
			Name      string `json:"name"`
			MountPath string `json:"mountPath"`
			ReadOnly  bool   `json:"readOnly"`
		} `json:"volumeMounts"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `json:"path"`
			Port any    `json:"port"`
		} `json:"httpGet"`
	}
	configMap struct {
		Data map[string]string `json:"data"`
	}
	secret struct {
		StringData map[string]string `json:"stringData"`
	}
	service struct {
		Spec struct {
			Selector map[string]string `json:"selector"`
			Ports    []struct {
				Name       string `json:"name"`
				Port       int    `json:"port"`
				TargetPort any    `json:"targetPort"`
			} `json:"ports"`
		} `json:"spec"`
	}
	pdb struct {
		Spec struct {
			MinAvailable   any `json:"minAvailable"`
			MaxUnavailable any `json:"maxUnavailable"`
			Selector       struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
		} `json:"spec"`
	}
	hpa struct {
		Spec struct {
			ScaleTargetRef struct {
				Kind string `json:"kind"`
				Name string `json:"name"`
			} `json:"scaleTargetRef"`
			Metrics []struct {
				Resource struct {
					Name string `json:"name"`
				} `json:"resource"`
			} `json:"metrics"`
		} `json:"spec"`
	}
	scaledObject struct {
		Spec struct {
			ScaleTargetRef struct {
				Name string `json:"name"`
			} `json:"scaleTargetRef"`
			Triggers []struct {
				Type     string            `json:"type"`
				Metadata map[string]string `json:"metadata"`
			} `json:"triggers"`
		} `json:"spec"`
	}
	serviceMonitor struct {
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port string `json:"port"`
				Path string `json:"path"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
)

// show renders a decoded field for a failure message: its JSON, or "unset".
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" {
		return "unset"
	}
	return string(b)
}

// subset reports whether every label of sel is in labels (how a selector matches).
func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestLint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"default values", nil},
		{"full values", []string{"-f", fullValues}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if out, err := runHelm(t, append([]string{"lint", "--strict", chartDir}, tt.args...)...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

func TestTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		args           []string
		secretName     string // the Secret the pods read
		chartSecret    bool   // the chart makes that Secret
		keda           bool
		natsCreds      bool
		serviceMonitor bool
		dashboard      bool
		image          string
	}{
		{
			name:       "default values",
			secretName: "r-herald", chartSecret: true,
			image: "ghcr.io/herald-notify/herald:0.1.0",
		},
		{
			name: "full values", args: []string{"-f", fullValues},
			secretName: "herald-secrets",
			keda:       true, natsCreds: true, serviceMonitor: true, dashboard: true,
			image: "registry.example.com/herald:1.2.3",
		},
		{
			// Chart-made Secret with a creds file and chosen secrets, HPA instead of KEDA.
			name: "chart secret with values",
			args: []string{
				"--set", "secrets.HERALD_REDIS_URL=redis://redis-master.redis:6379/0",
				"--set", "secrets.HERALD_WHITE_TOKEN=EAAtoken",
				"--set-string", "secrets.HERALD_NATS_CREDS=-----BEGIN NATS USER JWT-----\nabc\n------END NATS USER JWT------",
				"--set", "natsCreds.enabled=true",
				"--set", "config.HERALD_SHUTDOWN_TIMEOUT=2m",
			},
			secretName: "r-herald", chartSecret: true, natsCreds: true,
			image: "ghcr.io/herald-notify/herald:0.1.0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, tt.args...)

			var cm configMap
			m.mustGet(t, "ConfigMap", "r-herald").decode(t, &cm)
			drain, err := time.ParseDuration(cm.Data["HERALD_SHUTDOWN_TIMEOUT"])
			if err != nil {
				t.Fatalf("HERALD_SHUTDOWN_TIMEOUT in the ConfigMap: %v", err)
			}
			for _, name := range secretVars {
				if _, ok := cm.Data[name]; ok {
					t.Errorf("secret variable %s is in the ConfigMap", name)
				}
			}
			if _, ok := cm.Data[natsCredsVar]; ok {
				t.Errorf("%s is in the ConfigMap", natsCredsVar)
			}
			for _, name := range cliOnlyVars {
				if _, ok := cm.Data[name]; ok {
					t.Errorf("CLI-only variable %s is in the ConfigMap", name)
				}
			}
			vars := configVars(t)
			known := configEnv(t)
			for name := range cm.Data {
				// A key Herald does not read is a typo or a variable the code dropped.
				if _, ok := known[name]; !ok {
					t.Errorf("ConfigMap has %s, which config.Config does not read", name)
				}
			}
			if len(tt.args) == 0 {
				for name, want := range vars {
					if got, ok := cm.Data[name]; !ok || got != want {
						t.Errorf("ConfigMap %s = %q (present %v), want default %q", name, got, ok, want)
					}
				}
			}

			if _, ok := m.get("Secret", "r-herald"); ok != tt.chartSecret {
				t.Errorf("chart-made Secret rendered: %v, want %v", ok, tt.chartSecret)
			}
			if tt.chartSecret && tt.natsCreds {
				var s secret
				m.mustGet(t, "Secret", "r-herald").decode(t, &s)
				if !strings.Contains(s.StringData[natsCredsVar], "NATS USER JWT") {
					t.Errorf("Secret %s = %q, want the creds file", natsCredsVar, s.StringData[natsCredsVar])
				}
				if s.StringData["HERALD_WHITE_TOKEN"] != "EAAtoken" {
					t.Errorf("Secret HERALD_WHITE_TOKEN = %q", s.StringData["HERALD_WHITE_TOKEN"])
				}
				if _, ok := s.StringData["HERALD_GREY_TOKEN"]; ok {
					t.Error("an empty secret value is in the Secret")
				}
			}

			pods := map[string]map[string]string{}
			for _, component := range []string{"worker", "api"} {
				name := "r-herald-" + component
				var d deployment
				m.mustGet(t, "Deployment", name).decode(t, &d)
				pods[component] = d.Spec.Template.Metadata.Labels
				checkDeployment(t, component, d, cm, vars, drain, tt.secretName, tt.natsCreds, tt.image)

				// The public port has a Service (api only); each ops port one of its own, never
				// merged, so exposing the API never exposes metrics or profiles.
				svcPorts := map[string]string{name: "ops"} // Service → its one port
				if component == "api" {
					svcPorts = map[string]string{name: "http", name + "-ops": "ops"}
				}
				for sn, port := range svcPorts {
					number := map[string]int{"http": 8080, "ops": 9090}[port]
					o := m.mustGet(t, "Service", sn)
					var svc service
					o.decode(t, &svc)
					if !subset(svc.Spec.Selector, d.Spec.Template.Metadata.Labels) {
						t.Errorf("Service %s selector %v does not select its pods %v", sn, svc.Spec.Selector, d.Spec.Template.Metadata.Labels)
					}
					if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != port || svc.Spec.Ports[0].Port != number || svc.Spec.Ports[0].TargetPort != port {
						t.Errorf("Service %s ports = %+v, want only %s %d -> %s", sn, svc.Spec.Ports, port, number, port)
					}
					if (o.Labels["herald.io/ops"] == "true") != (port == "ops") {
						t.Errorf("Service %s: herald.io/ops label %q, want it exactly on ops Services", sn, o.Labels["herald.io/ops"])
					}
				}

				var b pdb
				m.mustGet(t, "PodDisruptionBudget", name).decode(t, &b)
				if !subset(b.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
					t.Errorf("PDB %s does not select its pods", name)
				}
				if (b.Spec.MinAvailable == nil) == (b.Spec.MaxUnavailable == nil) {
					t.Errorf("PDB %s: want exactly one of minAvailable and maxUnavailable, got %+v", name, b.Spec)
				}
				if d.Spec.Replicas != nil && *d.Spec.Replicas == 0 {
					t.Errorf("Deployment %s has 0 replicas", name)
				}
			}
			if subset(pods["worker"], pods["api"]) || subset(pods["api"], pods["worker"]) {
				t.Error("worker and api pod labels overlap: their Services and PDBs would select each other's pods")
			}

			// The worker scales on lag with KEDA, else on CPU; never both.
			_, hasHPA := m.get("HorizontalPodAutoscaler", "r-herald-worker")
			_, hasSO := m.get("ScaledObject", "r-herald-worker")
			if hasHPA == tt.keda || hasSO != tt.keda {
				t.Fatalf("keda=%v: worker HPA rendered %v, ScaledObject rendered %v", tt.keda, hasHPA, hasSO)
			}
			var workerDeploy deployment
			m.mustGet(t, "Deployment", "r-herald-worker").decode(t, &workerDeploy)
			if workerDeploy.Spec.Replicas != nil {
				t.Errorf("the autoscaled worker Deployment sets replicas=%d: every upgrade would reset the scale", *workerDeploy.Spec.Replicas)
			}
			if hasHPA {
				var h hpa
				m.mustGet(t, "HorizontalPodAutoscaler", "r-herald-worker").decode(t, &h)
				if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != "r-herald-worker" ||
					len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Resource.Name != "cpu" {
					t.Errorf("worker HPA = %+v, want CPU on Deployment r-herald-worker", h.Spec)
				}
			}
			if hasSO {
				checkScaledObject(t, m.mustGet(t, "ScaledObject", "r-herald-worker"))
			}

			if got := m.count("ServiceMonitor"); got != map[bool]int{false: 0, true: 1}[tt.serviceMonitor] {
				t.Errorf("%d ServiceMonitors rendered, want enabled=%v", got, tt.serviceMonitor)
			}
			if tt.serviceMonitor {
				var sm serviceMonitor
				m.mustGet(t, "ServiceMonitor", "r-herald").decode(t, &sm)
				if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Path != "/metrics" || sm.Spec.Endpoints[0].Port != "ops" {
					t.Errorf("ServiceMonitor endpoints = %+v, want ops /metrics", sm.Spec.Endpoints)
				}
				for svcName, want := range map[string]bool{"r-herald-worker": true, "r-herald-api-ops": true, "r-herald-api": false} {
					svc := m.mustGet(t, "Service", svcName)
					if got := subset(sm.Spec.Selector.MatchLabels, svc.Labels); got != want {
						t.Errorf("ServiceMonitor selects the Service %s: %v, want %v", svcName, got, want)
					}
				}
			}

			dash, hasDash := m.get("ConfigMap", "r-herald-dashboard")
			if hasDash != tt.dashboard {
				t.Fatalf("dashboard ConfigMap rendered %v, want %v", hasDash, tt.dashboard)
			}
			if hasDash {
				if dash.Labels["grafana_dashboard"] != "1" {
					t.Errorf("dashboard ConfigMap labels = %v, want grafana_dashboard: \"1\"", dash.Labels)
				}
				var c configMap
				dash.decode(t, &c)
				checkDashboard(t, []byte(c.Data["herald.json"]))
			}
		})
	}
}

// checkDeployment checks one Deployment's pod: command, probes, security, grace period
// and that every HERALD_ variable reaches the container.
func checkDeployment(t *testing.T, component string, d deployment, cm configMap, vars map[string]string, drain time.Duration, secretName string, natsCreds bool, image string) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if !subset(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
		t.Errorf("%s: selector %v does not match the pod labels", component, d.Spec.Selector.MatchLabels)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", component, len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image != image || !slices.Equal(c.Args, []string{component}) {
		t.Errorf("%s: image %q args %v, want %q [%s] (herald %s)", component, c.Image, c.Args, image, component, component)
	}
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	wantPorts := map[string]int{"ops": 9090}
	if component == "api" {
		wantPorts["http"] = 8080
	}
	if !maps.Equal(ports, wantPorts) {
		t.Errorf("%s: ports %v, want %v (the public port on the API only, the ops port on both)", component, ports, wantPorts)
	}
	// Probes on the ops port, which HERALD_OPS_ADDR opens in both processes.
	for _, p := range []struct {
		name  string
		probe *probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port != "ops" {
			t.Errorf("%s: %s probe %s, want GET %s on ops", component, p.name, show(p.probe), p.path)
		}
	}
	if got := cm.Data["HERALD_OPS_ADDR"]; got == "" || !strings.HasSuffix(got, ":"+strconv.Itoa(wantPorts["ops"])) {
		t.Errorf("%s: HERALD_OPS_ADDR %q does not open the ops port %d the probes use", component, got, wantPorts["ops"])
	}

	if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= drain {
		t.Errorf("%s: terminationGracePeriodSeconds %s, want more than the drain timeout %v", component, show(pod.TerminationGracePeriodSeconds), drain)
	}

	psc, csc := pod.SecurityContext, c.SecurityContext
	nonRoot := (psc.RunAsNonRoot != nil && *psc.RunAsNonRoot) || (csc.RunAsNonRoot != nil && *csc.RunAsNonRoot)
	uid := csc.RunAsUser
	if uid == nil {
		uid = psc.RunAsUser
	}
	if !nonRoot || uid == nil || *uid != 65532 {
		t.Errorf("%s: runAsNonRoot %v uid %s, want non-root 65532", component, nonRoot, show(uid))
	}
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root file system is writable", component)
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("%s: privilege escalation allowed", component)
	}
	if !slices.Equal(csc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("%s: capabilities drop %v, want [ALL]", component, csc.Capabilities.Drop)
	}
	seccomp := csc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != "RuntimeDefault" {
		t.Errorf("%s: seccomp profile %s, want RuntimeDefault", component, show(seccomp))
	}
	if c.Resources.Requests["cpu"] == nil || c.Resources.Requests["memory"] == nil || c.Resources.Limits["memory"] == nil {
		t.Errorf("%s: resources %+v, want cpu/memory requests and a memory limit", component, c.Resources)
	}

	// Every variable: from the ConfigMap (envFrom) or from the Secret (secretKeyRef).
	fromConfigMap := false
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil && ef.ConfigMapRef.Name == "r-herald" {
			fromConfigMap = true
		}
	}
	if !fromConfigMap {
		t.Fatalf("%s: envFrom %+v does not load the ConfigMap r-herald", component, c.EnvFrom)
	}
	fromSecret := map[string]bool{}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			if e.ValueFrom.SecretKeyRef.Name != secretName || e.ValueFrom.SecretKeyRef.Key != e.Name {
				t.Errorf("%s: %s from Secret %s key %s, want %s key %s", component, e.Name,
					e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key, secretName, e.Name)
			}
			fromSecret[e.Name] = true
			continue
		}
		env[e.Name] = e.Value
	}
	for name := range vars {
		if _, ok := cm.Data[name]; !ok {
			if _, ok := env[name]; !ok {
				t.Errorf("%s: %s is neither in the ConfigMap nor set", component, name)
			}
		}
	}
	// Exactly this component's secrets: the worker never sees an API key or a webhook
	// secret, the API never a provider token.
	if got, want := slices.Sorted(maps.Keys(fromSecret)), slices.Sorted(slices.Values(componentSecrets[component])); !slices.Equal(got, want) {
		t.Errorf("%s: secrets from the Secret %v, want exactly %v", component, got, want)
	}
	for _, name := range cliOnlyVars {
		_, set := env[name]
		if set || fromSecret[name] {
			t.Errorf("%s: CLI-only variable %s reaches the pod", component, name)
		}
	}

	// NATS credentials: a file from the Secret's HERALD_NATS_CREDS key, the variable its path.
	credsPath, hasCreds := env[natsCredsVar]
	if hasCreds != natsCreds {
		t.Fatalf("%s: %s set %v (%q), want %v", component, natsCredsVar, hasCreds, credsPath, natsCreds)
	}
	if !natsCreds {
		return
	}
	mounted := false
	for _, vm := range c.VolumeMounts {
		if !vm.ReadOnly || filepath.Dir(credsPath) != filepath.Clean(vm.MountPath) {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name != vm.Name || v.Secret == nil || v.Secret.SecretName != secretName {
				continue
			}
			for _, it := range v.Secret.Items {
				if it.Key == natsCredsVar && it.Path == filepath.Base(credsPath) {
					mounted = true
				}
			}
		}
	}
	if !mounted {
		t.Errorf("%s: %s=%s is not a read-only file from Secret %s key %s", component, natsCredsVar, credsPath, secretName, natsCredsVar)
	}
}

// checkScaledObject checks the KEDA ScaledObject: one nats-jetstream trigger per worker
// consumer of HERALD_JOBS, with every field the scaler needs.
func checkScaledObject(t *testing.T, o object) {
	t.Helper()
	var so scaledObject
	o.decode(t, &so)
	if so.Spec.ScaleTargetRef.Name != "r-herald-worker" {
		t.Errorf("ScaledObject targets %q, want r-herald-worker", so.Spec.ScaleTargetRef.Name)
	}
	var consumers []string
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "nats-jetstream" {
			t.Errorf("trigger type %q, want nats-jetstream", tr.Type)
			continue
		}
		for _, f := range []string{"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"} {
			if tr.Metadata[f] == "" {
				t.Errorf("nats-jetstream trigger %v lacks %s", tr.Metadata, f)
			}
		}
		if tr.Metadata["stream"] != "HERALD_JOBS" {
			t.Errorf("trigger stream %q, want HERALD_JOBS", tr.Metadata["stream"])
		}
		if strings.Contains(tr.Metadata["natsServerMonitoringEndpoint"], "://") {
			t.Errorf("natsServerMonitoringEndpoint %q has a scheme; KEDA wants host:port", tr.Metadata["natsServerMonitoringEndpoint"])
		}
		consumers = append(consumers, tr.Metadata["consumer"])
	}
	sort.Strings(consumers)
	if want := []string{"herald-bulk", "herald-transactional"}; !slices.Equal(consumers, want) {
		t.Errorf("ScaledObject consumers %v, want %v", consumers, want)
	}
}

// metricName matches a metric name in a PromQL expression; label names and values do not
// start with these prefixes in our queries, and the test checks what it finds.
var metricName = regexp.MustCompile(`\b(?:herald|nats)_[a-z0-9_]+`)

// checkDashboard checks that the dashboard is JSON, has panels, and queries only metrics
// that exist, including each one the required panels are about.
func checkDashboard(t *testing.T, raw []byte) {
	t.Helper()
	var dash struct {
		Title  string           `json:"title"`
		UID    string           `json:"uid"`
		Panels []map[string]any `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard has title %q uid %q and %d panels", dash.Title, dash.UID, len(dash.Panels))
	}
	var all any
	if err := json.Unmarshal(raw, &all); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	collectQueries(all, &exprs)
	if len(exprs) == 0 {
		t.Fatal("dashboard has no queries")
	}
	used := map[string]bool{}
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(exportedMetrics, b) && strings.HasSuffix(b, "_seconds") {
					base = b
				}
			}
			if !slices.Contains(exportedMetrics, base) {
				t.Errorf("dashboard queries %s, which nothing exports (in %q)", name, e)
			}
			used[base] = true
		}
	}
	// One metric per panel the dashboard must have: throughput per channel, latency,
	// fallbacks, limiter waits, queue lag, DLQ size, breaker state, jobs by outcome.
	for _, want := range []string{
		"herald_sends_total", "herald_send_duration_seconds", "herald_fallbacks_total", "herald_limiter_waits_total",
		"nats_consumer_num_pending", "nats_stream_total_messages", "herald_breaker_state", "herald_jobs_total",
	} {
		if !used[want] {
			t.Errorf("dashboard does not query %s", want)
		}
	}
}

// collectQueries gathers every PromQL string in the dashboard: panel targets' expr and
// template variables' queries.
func collectQueries(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "definition" || k == "query") {
				*out = append(*out, s)
				continue
			}
			collectQueries(x, out)
		}
	case []any:
		for _, x := range v {
			collectQueries(x, out)
		}
	}
}

func TestDashboardFile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "herald.json"))
	if err != nil {
		t.Fatal(err)
	}
	checkDashboard(t, raw)
}

// TestGracePeriod checks that the template's duration arithmetic agrees with Go's.
func TestGracePeriod(t *testing.T) {
	t.Parallel()
	tests := []struct {
		drain  string
		margin int
	}{
		{"30s", 15},
		{"90s", 15},
		{"1m30s", 10},
		{"2m", 5},
		{"1h2m3s", 15},
	}
	for _, tt := range tests {
		t.Run(tt.drain, func(t *testing.T) {
			t.Parallel()
			m := render(t, "--set", "config.HERALD_SHUTDOWN_TIMEOUT="+tt.drain,
				"--set", fmt.Sprintf("terminationGraceMarginSeconds=%d", tt.margin))
			drain, err := time.ParseDuration(tt.drain)
			if err != nil {
				t.Fatal(err)
			}
			want := int64(drain/time.Second) + int64(tt.margin)
			var d deployment
			m.mustGet(t, "Deployment", "r-herald-worker").decode(t, &d)
			if got := d.Spec.Template.Spec.TerminationGracePeriodSeconds; got == nil || *got != want {
				t.Errorf("terminationGracePeriodSeconds = %s, want %d", show(got), want)
			}
		})
	}
}

// TestSchemaRejects checks that values.schema.json refuses bad values before anything
// renders, and that the control case (a valid value for the same key) passes.
func TestSchemaRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		set   string
		valid bool
	}{
		{"valid replicas", "worker.replicas=3", true},
		{"negative replicas", "worker.replicas=-1", false},
		{"replicas of the wrong type", "worker.replicas=two", false},
		{"misspelt key", "worker.replcas=2", false},
		{"secret in the ConfigMap", "config.HERALD_WHITE_TOKEN=abc", false},
		{"unknown variable prefix", "config.WHITE_TOKEN=abc", false},
		{"concurrency not a number", "config.HERALD_WORKER_CONCURRENCY=lots", false},
		{"drain timeout the template cannot read", "config.HERALD_SHUTDOWN_TIMEOUT=500ms", false},
		{"valid drain timeout", "config.HERALD_SHUTDOWN_TIMEOUT=1m30s", true},
		{"unknown SMS driver", "config.HERALD_SMS_DRIVER=carrier-pigeon", false},
		{"monitoring endpoint with a scheme", "keda.natsServerMonitoringEndpoint=http://nats:8222", false},
		{"no consumers", "keda.consumers=null", false},
		{"valid price", "config.HERALD_PRICE_SMS=2.25", true},
		{"free grey messages", "config.HERALD_PRICE_GREY=0", true},
		{"negative price", "config.HERALD_PRICE_MARKETING=-1", false},
		{"negative price as a string", "config.HERALD_PRICE_UTILITY=-0.5", false},
		{"price not a number", "config.HERALD_PRICE_SMS=cheap", false},
		{"currency not ISO 4217", "config.HERALD_PRICE_CURRENCY=rub", false},
		{"grey webhook token in the ConfigMap", "config.HERALD_GREY_WEBHOOK_TOKEN=abc", false},
		{"CLI API key in the ConfigMap", "config.HERALD_API_KEY=abc", false},
		{"DLR secret in the ConfigMap", "config.HERALD_SMS_DLR_SECRET=abc", false},
		{"ops address without a port", "config.HERALD_OPS_ADDR=localhost", false},
		{"valid ops address", "config.HERALD_OPS_ADDR=0.0.0.0:9191", true},
		{"pprof not a boolean", "config.HERALD_PPROF=maybe", false},
		{"network policy switch not a boolean", "networkPolicy.enabled=maybe", false},
		{"network policy off", "networkPolicy.enabled=false", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := runHelm(t, "template", "r", chartDir, "--set", tt.set)
			if tt.valid {
				if err != nil {
					t.Fatalf("--set %s refused: %v", tt.set, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("--set %s rendered; the schema should refuse it", tt.set)
			}
			if !strings.Contains(out, "schema") {
				t.Errorf("--set %s failed, but not on the schema:\n%s", tt.set, out)
			}
		})
	}
}

// networkPolicy is the part of a NetworkPolicy the checks read.
type networkPolicy struct {
	Spec struct {
		PodSelector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"podSelector"`
		PolicyTypes []string `json:"policyTypes"`
		Ingress     []struct {
			Ports []struct {
				Port     any    `json:"port"`
				Protocol string `json:"protocol"`
			} `json:"ports"`
			From []map[string]any `json:"from"`
		} `json:"ingress"`
		Egress []map[string]any `json:"egress"`
	} `json:"spec"`
}

// TestNetworkPolicy: a policy per Deployment, on by default: the API's public port from
// networkPolicy.api.from (anyone by default), the ops port from networkPolicy.ops.from (in
// the cluster by default), nothing else; egress limited only when rules are given.
func TestNetworkPolicy(t *testing.T) {
	t.Parallel()
	inCluster := []map[string]any{{"namespaceSelector": map[string]any{}}}
	ingress := []map[string]any{{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"name": "ingress"}}}}
	tests := []struct {
		name    string
		args    []string
		enabled bool
		apiFrom []map[string]any // nil: from anywhere
		opsFrom []map[string]any
		egress  bool
	}{
		{name: "default values", enabled: true, opsFrom: inCluster},
		{name: "off", args: []string{"--set", "networkPolicy.enabled=false"}},
		{name: "the API from the ingress controller only", enabled: true, apiFrom: ingress, opsFrom: inCluster,
			args: []string{"--set", "networkPolicy.api.from[0].namespaceSelector.matchLabels.name=ingress"}},
		{name: "egress rules", enabled: true, opsFrom: inCluster, egress: true,
			args: []string{"--set", "networkPolicy.egress[0].to[0].ipBlock.cidr=0.0.0.0/0"}},
		{name: "full values", enabled: true, args: []string{"-f", fullValues}, opsFrom: inCluster, egress: true,
			apiFrom: []map[string]any{{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "ingress-nginx"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, tt.args...)
			if got, want := m.count("NetworkPolicy"), map[bool]int{false: 0, true: 2}[tt.enabled]; got != want {
				t.Fatalf("%d NetworkPolicies, want %d", got, want)
			}
			if !tt.enabled {
				return
			}
			for _, component := range []string{"api", "worker"} {
				var np networkPolicy
				m.mustGet(t, "NetworkPolicy", "r-herald-"+component).decode(t, &np)
				var d deployment
				m.mustGet(t, "Deployment", "r-herald-"+component).decode(t, &d)
				if !subset(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Metadata.Labels) {
					t.Errorf("%s: the policy does not select its pods", component)
				}
				other := map[string]string{"api": "worker", "worker": "api"}[component]
				var od deployment
				m.mustGet(t, "Deployment", "r-herald-"+other).decode(t, &od)
				if subset(np.Spec.PodSelector.MatchLabels, od.Spec.Template.Metadata.Labels) {
					t.Errorf("%s: the policy selects the %s pods too", component, other)
				}
				want := map[string][]map[string]any{"ops": tt.opsFrom} // port → from
				if component == "api" {
					want["http"] = tt.apiFrom
				}
				got := map[string][]map[string]any{}
				for _, rule := range np.Spec.Ingress {
					if len(rule.Ports) != 1 || rule.Ports[0].Protocol != "TCP" {
						t.Errorf("%s: ingress rule ports %+v, want one TCP port", component, rule.Ports)
						continue
					}
					got[fmt.Sprint(rule.Ports[0].Port)] = rule.From
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: ingress %v, want %v", component, got, want)
				}
				if hasEgress := slices.Contains(np.Spec.PolicyTypes, "Egress"); hasEgress != tt.egress || (len(np.Spec.Egress) > 0) != tt.egress {
					t.Errorf("%s: policy types %v, %d egress rules; want egress limited: %v", component, np.Spec.PolicyTypes, len(np.Spec.Egress), tt.egress)
				}
				if !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
					t.Errorf("%s: policy types %v lack Ingress", component, np.Spec.PolicyTypes)
				}
			}
		})
	}
}
