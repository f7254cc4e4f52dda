# Verifies the answer, not only that the agent is up: {{.Version}} is the version the host should
# run. The URL is dialed through the host's SSH connection, so 127.0.0.1 is the host itself.
resource "canary_guard" "health" {
  name              = "agent-health"
  severity          = "fatal"
  interval          = "10s"
  failure_threshold = 3
  http = {
    url           = "http://127.0.0.1:8080/healthz"
    expect_status = [200]
    expect_body   = "\"version\":\"{{.Version}}\""
  }
}

# Degraded but functional: recorded and shown, never blocks the rollout.
resource "canary_guard" "queue" {
  name     = "queue-depth"
  severity = "warn"
  command = {
    command = "test $(cat /var/lib/agent/queue-depth) -lt 1000"
  }
}

resource "canary_guard" "db" {
  name = "database-reachable"
  tcp  = { address = "127.0.0.1:5432" }
}

# Log lines since the deploy: a file read from the offset recorded at deploy (rotation and
# truncation are followed), or a journald unit with journal_unit.
resource "canary_guard" "logs" {
  name = "agent-logs"
  log = {
    file            = "/var/log/agent.log"
    fail_pattern    = "(?i)panic|fatal"
    max_matches     = 0
    require_pattern = "started version {{.Version}}"
    require_within  = "30s"
  }
}

# Sentry: no new issue in the release since the deploy, and at most twice the error rate of the
# window before it. Needs the provider's sentry settings.
resource "canary_guard" "errors" {
  name = "sentry-regression"
  sentry = {
    max_new_issues  = 0
    max_error_ratio = 2.0
    min_events      = 20
    query           = "server_name:{{.Host.Name}}"
    on_unavailable  = "fail"
  }
}
