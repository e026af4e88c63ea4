package deploy_test

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/config"
)

var helmUpdate = flag.Bool("helm.update", false, "rewrite deploy/kubernetes/verdict.yaml from the chart")

const (
	helmChart    = "helm/verdict"
	helmAllVals  = "helm/verdict/ci/all-features-values.yaml"
	helmRelease  = "verdict"
	helmNS       = "verdict-system"
	helmManifest = "kubernetes/verdict.yaml"
)

// helmBin finds the helm binary `make tools` installs; without it the
// chart tests skip, except in CI, where they must run.
func helmBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "helm")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("helm not found: run `make tools`")
	}
	t.Skip("helm not found: `make tools` installs it")
	return ""
}

func helmRun(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// helmObjects is one render, every document decoded strictly into its
// typed Kubernetes object: a field the API does not have fails the test.
type helmObjects struct {
	kinds          []string
	sa             corev1.ServiceAccount
	cm             corev1.ConfigMap
	svc            corev1.Service
	deploy         appsv1.Deployment
	pdb            *policyv1.PodDisruptionBudget
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	serviceMonitor *helmServiceMonitor
}

// helmServiceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor
// the chart writes (its Go types live in the prometheus-operator module).
type helmServiceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

func helmDecode(t *testing.T, rendered []byte) helmObjects {
	t.Helper()
	var o helmObjects
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(rendered), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(doc, "")) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		var target any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			target = &corev1.Namespace{}
		case "v1 ServiceAccount":
			target = &o.sa
		case "v1 ConfigMap":
			target = &o.cm
		case "v1 Service":
			target = &o.svc
		case "apps/v1 Deployment":
			target = &o.deploy
		case "policy/v1 PodDisruptionBudget":
			o.pdb = &policyv1.PodDisruptionBudget{}
			target = o.pdb
		case "autoscaling/v2 HorizontalPodAutoscaler":
			o.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
			target = o.hpa
		case "monitoring.coreos.com/v1 ServiceMonitor":
			o.serviceMonitor = &helmServiceMonitor{}
			target = o.serviceMonitor
		default:
			t.Fatalf("unexpected object %s %s", tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), target); err != nil {
			t.Fatalf("%s: %v\n%s", tm.Kind, err, doc)
		}
		o.kinds = append(o.kinds, tm.Kind)
	}
	slices.Sort(o.kinds)
	return o
}

func TestHelmLint(t *testing.T) {
	helmRun(t, "lint", "--strict", helmChart)
	helmRun(t, "lint", "--strict", helmChart, "-f", helmAllVals)
}

// helmAdminRoutes are the GET routes the admin listener registers, read
// from its source so a renamed endpoint fails the probe check here.
func helmAdminRoutes(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("../internal/admin/admin.go")
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, m := range regexp.MustCompile(`Handle(?:Func)?\("GET (/[^"]*)"`).FindAllStringSubmatch(string(src), -1) {
		routes = append(routes, m[1])
	}
	return routes
}

func TestHelmTemplate(t *testing.T) {
	routes := helmAdminRoutes(t)
	for _, tc := range []struct {
		name      string
		args      []string
		kinds     []string
		wantArgs  []string
		writable  []string // mount paths the container may write
		secretVol []string
	}{
		{
			name:     "defaults",
			kinds:    []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"},
			writable: []string{"/tmp"},
		},
		{
			name:  "every feature",
			args:  []string{"-f", helmAllVals},
			kinds: []string{"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "ServiceAccount", "ServiceMonitor"},
			wantArgs: []string{
				"--bundle=authz=https://bundles.example.com/authz.tar.gz",
				"--bundle=mcp=/var/run/verdict/bundles/mcp/bundle.tar.gz",
				"--bundle=local=/var/run/verdict/bundles/local",
				"--persist-dir=/var/lib/verdict",
				"--tls-cert=/etc/verdict/tls/tls.crt",
				"--tls-key=/etc/verdict/tls/tls.key",
				"--tls-client-ca=/etc/verdict/client-ca/ca.crt",
				"--allowed-peer=spiffe://cluster.local/ns/istio-system/*",
				"--jwks=/etc/verdict/jwks/jwks.json",
				"--jwt-issuer=https://idp.example.com",
				"--jwt-audience=https://mcp.example.com/mcp,https://api.example.com",
			},
			writable:  []string{"/tmp", "/var/lib/verdict"},
			secretVol: []string{"verdict-client-ca", "verdict-jwks", "verdict-tls"},
		},
		{
			name: "shared state on Redis, approvals on",
			args: []string{"--set", "redis.url=rediss://redis.example.com:6379/0", "--set", "redis.passwordSecret.name=redis-pw",
				"--set", "redis.caSecret.name=redis-ca", "--set", "redis.failOpen[0]=rate_limits", "--set", "config.approvals.enabled=true"},
			kinds:     []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"},
			writable:  []string{"/tmp"},
			secretVol: []string{"redis-ca", "redis-pw"},
		},
		{
			name: "JWKS from a URL",
			args: []string{"--set", "jwt.enabled=true", "--set", "jwt.jwksURL=https://idp.example.com/.well-known/jwks.json",
				"--set", "jwt.issuer=https://idp.example.com", "--set", "jwt.audiences[0]=https://mcp.example.com/mcp"},
			kinds:    []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"},
			wantArgs: []string{"--jwks=https://idp.example.com/.well-known/jwks.json", "--jwt-audience=https://mcp.example.com/mcp"},
			writable: []string{"/tmp"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := helmDecode(t, helmRun(t, append([]string{"template", helmRelease, helmChart, "--namespace", helmNS}, tc.args...)...))
			if !slices.Equal(o.kinds, tc.kinds) {
				t.Fatalf("kinds %v, want %v", o.kinds, tc.kinds)
			}
			pod := o.deploy.Spec.Template.Spec
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			c := pod.Containers[0]

			// Probes hit endpoints the admin listener serves, on its port.
			for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("%s probe: want httpGet", name)
					continue
				}
				if !slices.Contains(routes, p.HTTPGet.Path) || p.HTTPGet.Port.String() != "http" {
					t.Errorf("%s probe GET %s on %s: the admin listener serves %v on http", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), routes)
				}
			}
			if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
				t.Errorf("readiness %s, liveness %s: want /readyz and /healthz", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
			}

			// Ports: container, Service and the listen flags agree.
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if ports["grpc"] != 9191 || ports["http"] != 8181 {
				t.Errorf("container ports %v, want grpc 9191 and http 8181", ports)
			}
			for _, want := range []string{"--grpc-addr=0.0.0.0:9191", "--http-addr=0.0.0.0:8181"} {
				if !slices.Contains(c.Args, want) {
					t.Errorf("args %q lack %s", c.Args, want)
				}
			}
			svcPorts := map[string]corev1.ServicePort{}
			for _, p := range o.svc.Spec.Ports {
				svcPorts[p.Name] = p
			}
			if g := svcPorts["grpc"]; g.Port != 9191 || g.TargetPort.String() != "grpc" || g.AppProtocol == nil || *g.AppProtocol != "grpc" {
				t.Errorf("Service grpc port %+v: want 9191 to grpc, appProtocol grpc", g)
			}
			if h := svcPorts["http"]; h.Port != 8181 || h.TargetPort.String() != "http" {
				t.Errorf("Service http port %+v: want 8181 to http", h)
			}
			for k, v := range o.svc.Spec.Selector {
				if pod := o.deploy.Spec.Template.Labels[k]; pod != v {
					t.Errorf("Service selects %s=%s, the pods have %q", k, v, pod)
				}
			}

			// Locked down: non-root, read-only, no privileges, no token.
			psc, sc := pod.SecurityContext, c.SecurityContext
			if psc == nil || sc == nil {
				t.Fatal("no securityContext")
			}
			if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
				t.Errorf("pod securityContext %+v: want runAsNonRoot and uid 65532", psc)
			}
			if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("seccompProfile %+v, want RuntimeDefault", psc.SeccompProfile)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("container securityContext %+v: want a read-only root, no privilege escalation, all capabilities dropped", sc)
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken ||
				o.sa.AutomountServiceAccountToken == nil || *o.sa.AutomountServiceAccountToken {
				t.Error("the service account token is mounted: Verdict never calls the Kubernetes API")
			}
			if pod.ServiceAccountName != o.sa.Name {
				t.Errorf("pod service account %q, chart creates %q", pod.ServiceAccountName, o.sa.Name)
			}

			// Volumes: every mount has a volume; only emptyDirs are writable.
			vols := map[string]corev1.Volume{}
			var secrets []string
			for _, v := range pod.Volumes {
				vols[v.Name] = v
				if v.Secret != nil {
					secrets = append(secrets, v.Secret.SecretName)
				}
			}
			slices.Sort(secrets)
			if !slices.Equal(secrets, tc.secretVol) {
				t.Errorf("Secret volumes %v, want %v", secrets, tc.secretVol)
			}
			var writable []string
			for _, m := range c.VolumeMounts {
				v, ok := vols[m.Name]
				if !ok {
					t.Errorf("mount %s: no volume %s", m.MountPath, m.Name)
					continue
				}
				if !m.ReadOnly {
					writable = append(writable, m.MountPath)
					if v.EmptyDir == nil {
						t.Errorf("mount %s is writable and not an emptyDir", m.MountPath)
					}
				}
			}
			slices.Sort(writable)
			if !slices.Equal(writable, tc.writable) {
				t.Errorf("writable mounts %v, want %v", writable, tc.writable)
			}

			for _, want := range tc.wantArgs {
				if !slices.Contains(c.Args, want) {
					t.Errorf("args %q lack %s", c.Args, want)
				}
			}
			helmCheckArgs(t, c, o.cm)

			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %+v: want CPU and memory requests and a memory limit", c.Resources)
			}
			if len(pod.TopologySpreadConstraints) == 0 {
				t.Error("no topologySpreadConstraints")
			}
			for _, tsc := range pod.TopologySpreadConstraints {
				if tsc.LabelSelector == nil || !helmSubset(tsc.LabelSelector.MatchLabels, o.deploy.Spec.Template.Labels) {
					t.Errorf("topology spread %s selects %v, not the pods", tsc.TopologyKey, tsc.LabelSelector)
				}
			}
			if o.pdb == nil || !helmSubset(o.pdb.Spec.Selector.MatchLabels, o.deploy.Spec.Template.Labels) {
				t.Error("no PodDisruptionBudget selecting the pods")
			}

			if o.hpa != nil {
				if o.deploy.Spec.Replicas != nil {
					t.Error("Deployment sets replicas while the HPA scales it")
				}
				ref := o.hpa.Spec.ScaleTargetRef
				if ref.Kind != "Deployment" || ref.Name != o.deploy.Name || len(o.hpa.Spec.Metrics) != 1 || o.hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
					t.Errorf("HPA %+v: want CPU on Deployment %s", o.hpa.Spec, o.deploy.Name)
				}
			} else if o.deploy.Spec.Replicas == nil || *o.deploy.Spec.Replicas < 2 {
				t.Error("without the HPA, want at least 2 replicas")
			}
			if sm := o.serviceMonitor; sm != nil {
				if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "http" || !slices.Contains(routes, sm.Spec.Endpoints[0].Path) {
					t.Errorf("ServiceMonitor endpoints %+v: want a route the admin listener serves, on http", sm.Spec.Endpoints)
				}
				if !helmSubset(sm.Spec.Selector.MatchLabels, o.svc.Labels) {
					t.Errorf("ServiceMonitor selects %v, not the Service %v", sm.Spec.Selector.MatchLabels, o.svc.Labels)
				}
			}
		})
	}
}

// helmCheckArgs parses the container's arguments with pdp's own flags and
// configuration loader, the ConfigMap's config.yaml standing in for the
// mounted file: what the chart renders, pdp accepts.
func helmCheckArgs(t *testing.T, c corev1.Container, cm corev1.ConfigMap) {
	t.Helper()
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("args %q: want serve first", c.Args)
	}
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	args := slices.Clone(c.Args[1:])
	i := slices.Index(args, "--config=/etc/verdict/config/config.yaml")
	if i < 0 {
		t.Fatalf("args %q: want --config=/etc/verdict/config/config.yaml", c.Args)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || (m.Name == "config" && m.MountPath == "/etc/verdict/config")
	}
	if !mounted {
		t.Error("the ConfigMap is not mounted at /etc/verdict/config")
	}
	args[i] = "--config=" + cfgFile
	// Bundles on volumes: pdp checks that they exist, so stand them up
	// under a temporary directory.
	bundleRoot := t.TempDir()
	for j, a := range args {
		name, local, ok := strings.Cut(strings.TrimPrefix(a, "--bundle="), "=")
		if !ok || !strings.HasPrefix(a, "--bundle=") || !strings.HasPrefix(local, "/var/run/verdict/bundles/") {
			continue
		}
		local = filepath.Join(bundleRoot, strings.TrimPrefix(local, "/var/run/verdict/bundles/"))
		if strings.HasSuffix(local, ".tar.gz") {
			if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(local, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		} else if err := os.MkdirAll(local, 0o755); err != nil {
			t.Fatal(err)
		}
		args[j] = "--bundle=" + name + "=" + local
	}
	fs := flag.NewFlagSet("pdp serve", flag.ContinueOnError)
	flags := config.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("pdp serve %q: %v", args, err)
	}
	if fs.NArg() > 0 {
		t.Fatalf("pdp serve: unexpected argument %q", fs.Arg(0))
	}
	if _, err := flags.Resolve(); err != nil {
		t.Errorf("pdp serve %q: %v\nconfig.yaml:\n%s", args, err, cm.Data["config.yaml"])
	}
}

func helmSubset(sub, of map[string]string) bool {
	if len(sub) == 0 {
		return false
	}
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return true
}

// TestHelmManifests checks that deploy/kubernetes/verdict.yaml is the
// chart's default render. Regenerate it with
// `go test ./deploy -run TestHelmManifests -helm.update`.
func TestHelmManifests(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("# Verdict with the Helm chart's default values, for `kubectl apply -f`.\n")
	b.WriteString("# Generated from deploy/helm/verdict: do not edit; run\n")
	b.WriteString("# go test ./deploy -run TestHelmManifests -helm.update\n")
	b.WriteString("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + helmNS + "\n")
	b.Write(helmRun(t, "template", helmRelease, helmChart, "--namespace", helmNS))
	if *helmUpdate {
		if err := os.WriteFile(helmManifest, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(helmManifest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Errorf("%s is not the chart's default render: run go test ./deploy -run TestHelmManifests -helm.update", helmManifest)
	}
	o := helmDecode(t, got)
	for kind, ns := range map[string]string{"Deployment": o.deploy.Namespace, "Service": o.svc.Namespace, "ConfigMap": o.cm.Namespace, "ServiceAccount": o.sa.Namespace} {
		if ns != helmNS {
			t.Errorf("%s in namespace %q, want %s: kubectl apply would put it in the current one", kind, ns, helmNS)
		}
	}
}

// TestHelmRefuses checks that a values file which would start a broken pod
// fails the render with a message naming the value instead.
func TestHelmRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  []string
		want string
	}{
		{"mTLS without TLS", []string{"tls.clientCA.enabled=true", "tls.clientCA.secretName=ca"}, "tls.clientCA.enabled (mTLS) needs tls.enabled"},
		{"TLS without a Secret", []string{"tls.enabled=true"}, "tls.secretName is required"},
		{"allowed peers without mTLS", []string{"tls.enabled=true", "tls.secretName=s", "tls.allowedPeers[0]=spiffe://td/x"}, "tls.allowedPeers needs tls.clientCA.enabled"},
		{"JWT without an issuer", []string{"jwt.enabled=true", "jwt.jwksURL=https://idp/jwks", "jwt.audiences[0]=a"}, "jwt.issuer is required"},
		{"JWT without keys", []string{"jwt.enabled=true", "jwt.issuer=i", "jwt.audiences[0]=a"}, "jwt.jwksURL or jwt.jwksSecret.name is required"},
		{"approvals on two replicas without Redis", []string{"config.approvals.enabled=true"}, "config.approvals.enabled with several replicas needs redis.url"},
		{"approvals under the autoscaler without Redis", []string{"config.approvals.enabled=true", "replicaCount=1", "autoscaling.enabled=true"}, "needs redis.url"},
		{"a password in the Redis URL", []string{"redis.url=redis://:hunter2@redis:6379/0"}, "give the password in redis.passwordSecret"},
		{"bundle volume with two sources", []string{"bundles.volumes[0].name=b", "bundles.volumes[0].configMap=c", "bundles.volumes[0].existingClaim=p"}, "give exactly one of configMap or existingClaim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", helmRelease, helmChart}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := exec.Command(helmBin(t), args...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("helm template --set %v: err %v, want a failure saying %q; output:\n%s", tc.set, err, tc.want, out)
			}
		})
	}
}
