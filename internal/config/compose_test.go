package config_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	natsconf "github.com/nats-io/nats-server/v2/conf"

	"github.com/icpservice/icp/internal/config"
)

// The compose file cannot be started on the build machines (no container
// engine), so this test holds it to the service's own configuration: every
// variable it sets is one the service reads, every address names a service
// and a port that service serves, and each icpd service's environment passes
// the same validation icpd runs at start.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Deploy struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return f
}

// envNames lists the environment variables a kong-tagged struct reads.
func envNames(typ reflect.Type) map[string]bool {
	names := map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		for _, n := range strings.Split(typ.Field(i).Tag.Get("env"), ",") {
			if n != "" {
				names[n] = true
			}
		}
	}
	return names
}

// leadsourcerEnv reads the env tags of cmd/leadsourcer's configuration from
// its source (a main package cannot be imported).
func leadsourcerEnv(t *testing.T) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(repoRoot(t), "cmd/leadsourcer/config.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	re := regexp.MustCompile(`env:"([^"]+)"`)
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			for _, m := range re.FindAllStringSubmatch(lit.Value, -1) {
				names[m[1]] = true
			}
		}
		return true
	})
	if len(names) == 0 {
		t.Fatal("no env tags found in cmd/leadsourcer/config.go")
	}
	return names
}

// substitute resolves ${VAR:?msg} and ${VAR:-default} the way compose does,
// with placeholder values for the required ones.
func substitute(v string) string {
	re := regexp.MustCompile(`\$\{([A-Z0-9_]+)(:[?-])([^}]*)\}`)
	return re.ReplaceAllStringFunc(v, func(m string) string {
		p := re.FindStringSubmatch(m)
		switch {
		case p[2] == ":-":
			return p[3]
		case strings.Contains(p[1], "PASSWORD"):
			return "secret-" + strings.ToLower(p[1])
		case strings.Contains(p[1], "JWKS"):
			return "https://clerk.example.com/.well-known/jwks.json"
		default:
			return "https://clerk.example.com"
		}
	})
}

// containerPorts is what each service listens on inside the network.
func containerPorts(t *testing.T, f composeFile) map[string]map[string]bool {
	t.Helper()
	ports := map[string]map[string]bool{}
	add := func(svc, port string) {
		if ports[svc] == nil {
			ports[svc] = map[string]bool{}
		}
		ports[svc][port] = true
	}
	for name, s := range f.Services {
		for _, p := range s.Ports {
			add(name, p[strings.LastIndex(p, ":")+1:])
		}
		if s.Environment["ICP_ADDR"] != "" {
			_, port, _ := net.SplitHostPort(s.Environment["ICP_ADDR"])
			add(name, port)
		}
	}
	return ports
}

func TestComposeMatchesTheServiceConfiguration(t *testing.T) {
	f := loadCompose(t)
	icpdEnv := envNames(reflect.TypeOf(config.Config{}))
	lsEnv := leadsourcerEnv(t)
	ports := containerPorts(t, f)

	for _, want := range []string{"eventstore", "nats", "mongo", "api", "relay", "projector", "leadsourcer"} {
		if _, ok := f.Services[want]; !ok {
			t.Errorf("service %s is missing", want)
		}
	}
	if f.Services["api"].Deploy.Replicas != 2 || f.Services["relay"].Deploy.Replicas != 2 {
		t.Error("the API and the relay should run two replicas each")
	}

	checkAddr := func(svc, what, hostport string) {
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			t.Errorf("%s: %s %q is not host:port", svc, what, hostport)
			return
		}
		if _, ok := f.Services[host]; !ok {
			t.Errorf("%s: %s names host %q, which is no service", svc, what, host)
			return
		}
		if !ports[host][port] {
			t.Errorf("%s: %s names %s:%s, but %s does not serve port %s", svc, what, host, port, host, port)
		}
		if _, ok := f.Services[svc].DependsOn[host]; !ok {
			t.Errorf("%s: uses %s but does not depend on it", svc, host)
		}
		if f.Services[svc].DependsOn[host].Condition != "service_healthy" {
			t.Errorf("%s: should start after %s is healthy", svc, host)
		}
	}

	for name, s := range f.Services {
		if s.Build == nil {
			continue // an engine, not ours
		}
		isLeadsourcer := len(s.Entrypoint) > 0 && strings.HasSuffix(s.Entrypoint[0], "/leadsourcer")
		env := map[string]string{}
		for k, v := range s.Environment {
			env[k] = substitute(v)
			known := icpdEnv
			if isLeadsourcer {
				known = lsEnv
			}
			if !known[k] {
				t.Errorf("%s sets %s, which the service does not read", name, k)
			}
		}
		if isLeadsourcer {
			u, err := url.Parse(env["LEADSOURCER_NATS_URL"])
			if err != nil {
				t.Fatal(err)
			}
			checkAddr(name, "LEADSOURCER_NATS_URL", u.Host)
			continue
		}

		// icpd: the environment must pass icpd's own validation.
		for k, v := range env {
			t.Setenv(k, v)
		}
		cfg, err := config.Load(nil)
		if err != nil {
			t.Errorf("%s: icpd would refuse this environment:\n%v", name, err)
			continue
		}
		for k := range env {
			os.Unsetenv(k)
		}
		for _, pair := range []struct{ what, raw string }{
			{"ICP_EVENT_STORE", cfg.EventStore}, {"ICP_READ_MODEL", cfg.ReadModel}, {"ICP_NATS_URL", cfg.NATSURL},
		} {
			u, err := url.Parse(pair.raw)
			if err != nil || u.Host == "" {
				t.Errorf("%s: %s %q", name, pair.what, pair.raw)
				continue
			}
			checkAddr(name, pair.what, u.Host)
		}
		// The health check asks the admin listener this service runs.
		_, adminPort, _ := net.SplitHostPort(cfg.AdminAddr)
		if s.Healthcheck == nil || !strings.Contains(strings.Join(s.Healthcheck.Test, " "), ":"+adminPort+"/readyz") {
			t.Errorf("%s: health check should ask /readyz on the admin port %s", name, adminPort)
		}
		if cfg.Runs(config.RoleAPI) {
			_, apiPort, _ := net.SplitHostPort(cfg.Addr)
			found := false
			for _, p := range s.Ports {
				found = found || strings.HasSuffix(p, ":"+apiPort)
			}
			if !found {
				t.Errorf("%s: publishes no port for ICP_ADDR's port %s", name, apiPort)
			}
		}
	}
}

// natsPasswordEnv lists the password variables deploy/nats.conf reads.
var natsPasswordEnv = []string{"NATS_API_PASSWORD", "NATS_RELAY_PASSWORD", "NATS_PROJECTOR_PASSWORD", "NATS_LEADSOURCER_PASSWORD", "NATS_ADMIN_PASSWORD"}

// parseNATSConf parses deploy/nats.conf with each password variable set to
// its own name, so a user's password tells which variable it comes from.
func parseNATSConf(t *testing.T) map[string]any {
	t.Helper()
	for _, v := range natsPasswordEnv {
		t.Setenv(v, v)
	}
	conf, err := natsconf.ParseFile(filepath.Join(repoRoot(t), "deploy/nats.conf"))
	if err != nil {
		t.Fatalf("deploy/nats.conf: %v", err)
	}
	return conf
}

// requiredVar returns VAR of a compose value "${VAR:?message}", or "".
func requiredVar(v string) string {
	m := regexp.MustCompile(`^\$\{([A-Z0-9_]+):\?[^}]*\}$`).FindStringSubmatch(v)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestNATSConfigMatchesCompose(t *testing.T) {
	conf := parseNATSConf(t)
	js, ok := conf["jetstream"].(map[string]any)
	if !ok {
		t.Fatal("deploy/nats.conf enables no jetstream block")
	}
	if js["store_dir"] == nil || js["sync_interval"] == nil {
		t.Error("jetstream needs an explicit store_dir and sync_interval")
	}
	f := loadCompose(t)
	port := strconv.FormatInt(conf["port"].(int64), 10)
	if !containerPorts(t, f)["nats"][port] {
		t.Errorf("nats.conf listens on %s, compose does not publish it", port)
	}
	mounted := false
	for _, v := range f.Services["nats"].Volumes {
		mounted = mounted || strings.HasPrefix(v, "./deploy/nats.conf:")
	}
	if !mounted {
		t.Error("compose does not mount deploy/nats.conf")
	}

	// Every user of nats.conf has a password from a variable the nats
	// service requires (compose refuses to start when it is unset or empty).
	authz, _ := conf["authorization"].(map[string]any)
	users, _ := authz["users"].([]any)
	if len(users) == 0 {
		t.Fatal("deploy/nats.conf defines no users: NATS would admit anyone")
	}
	passwordVar := map[string]string{} // user -> variable
	for _, u := range users {
		m := u.(map[string]any)
		name, _ := m["user"].(string)
		pw, _ := m["password"].(string)
		passwordVar[name] = pw
		if requiredVar(f.Services["nats"].Environment[pw]) != pw {
			t.Errorf("nats.conf user %s: its password variable %q is not required by the nats service's environment", name, pw)
		}
	}

	// Each service that uses the bus connects as the user of its role,
	// with that user's password variable.
	for name, s := range f.Services {
		if s.Build == nil {
			continue
		}
		env := s.Environment
		user, pw := env["ICP_NATS_USER"], env["ICP_NATS_PASSWORD"]
		wantUser := ""
		switch {
		case env["LEADSOURCER_DURABLE"] != "":
			// nats.conf's worker permissions name the durable.
			user, pw, wantUser = env["LEADSOURCER_NATS_USER"], env["LEADSOURCER_NATS_PASSWORD"], env["LEADSOURCER_DURABLE"]
		case env["ICP_ROLES"] == config.RoleRelay || env["ICP_ROLES"] == config.RoleProjector || env["ICP_ROLES"] == config.RoleAPI:
			// The API connects only to learn the bus's max_payload.
			wantUser = env["ICP_ROLES"]
		default:
			t.Errorf("%s: roles %q: each service should run one role", name, env["ICP_ROLES"])
			continue
		}
		if user != wantUser {
			t.Errorf("%s: connects to NATS as %q, want %q", name, user, wantUser)
		}
		if v, ok := passwordVar[user]; !ok || requiredVar(pw) != v {
			t.Errorf("%s: NATS password %q, want ${%s:?...}", name, pw, passwordVar[user])
		}
	}
}

// MongoDB runs with authentication: a root user from the environment, a key
// file for the replica set's members, and the service connecting as a user
// of its own.
func TestMongoRunsWithAuthentication(t *testing.T) {
	f := loadCompose(t)
	mongo := f.Services["mongo"]
	cmd := strings.Join(mongo.Command, " ")
	m := regexp.MustCompile(`--keyFile (\S+)`).FindStringSubmatch(cmd)
	if m == nil || !strings.Contains(cmd, "--replSet") {
		t.Fatalf("mongo command %q: want a replica set with --keyFile", cmd)
	}
	keyDir := filepath.Dir(m[1])
	var keyVolume string
	for _, v := range mongo.Volumes {
		if parts := strings.Split(v, ":"); len(parts) >= 2 && parts[1] == keyDir {
			keyVolume = parts[0]
		}
	}
	if _, named := f.Volumes[keyVolume]; !named {
		t.Fatalf("mongo: the key file's folder %s is not a named volume", keyDir)
	}
	// A step writes the key file before mongo starts.
	writer := ""
	for name, s := range f.Services {
		for _, v := range s.Volumes {
			if strings.HasPrefix(v, keyVolume+":") && name != "mongo" {
				writer = name
			}
		}
	}
	if writer == "" || mongo.DependsOn[writer].Condition != "service_completed_successfully" {
		t.Errorf("mongo should start after a step that writes the key file into %s has completed", keyVolume)
	}
	if requiredVar(mongo.Environment["MONGO_INITDB_ROOT_PASSWORD"]) == "" || mongo.Environment["MONGO_INITDB_ROOT_USERNAME"] == "" {
		t.Error("mongo: the root user and its password should come from the environment, the password required")
	}
	if hc := strings.Join(mongo.Healthcheck.Test, " "); !strings.Contains(hc, "MONGO_INITDB_ROOT_PASSWORD") {
		t.Errorf("mongo health check %q does not authenticate", hc)
	}
	initMounted := false
	for _, v := range mongo.Volumes {
		initMounted = initMounted || strings.HasPrefix(v, "./deploy/mongo-init.js:/docker-entrypoint-initdb.d/")
	}
	if !initMounted {
		t.Error("mongo does not mount deploy/mongo-init.js, which creates the service's user")
	}
	if _, err := os.Stat(filepath.Join(repoRoot(t), "deploy/mongo-init.js")); err != nil {
		t.Error(err)
	}
	for name, s := range f.Services {
		raw := s.Environment["ICP_READ_MODEL"]
		if raw == "" {
			continue
		}
		u, err := url.Parse(substitute(raw))
		if err != nil {
			t.Errorf("%s: ICP_READ_MODEL: %v", name, err)
			continue
		}
		if _, hasPW := u.User.Password(); u.User == nil || u.User.Username() == "" || !hasPW {
			t.Errorf("%s: ICP_READ_MODEL carries no user and password", name)
		}
	}
}
