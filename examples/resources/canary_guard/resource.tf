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
