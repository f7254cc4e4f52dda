resource "canary_release" "agent" {
  fleet           = canary_fleet.agents
  version         = "2.4.0"
  deploy          = { command = "sudo /opt/agent/install {{.Version}}", timeout = "5m" }
  revert          = { command = "sudo /opt/agent/install {{.PreviousVersion}}" }
  version_command = "cat /opt/agent/VERSION"
  guards          = [canary_guard.health, canary_guard.queue, canary_guard.db, canary_guard.logs, canary_guard.errors]
  followups       = ["1h", "4h", "12h"]
  stages = [
    { name = "canary", hosts = "1", observe = "5m" },
    { name = "wave", hosts = "25%", observe = "2m" },
    { name = "fleet", hosts = "100%", observe = "1m" },
  ]
  on_failure  = "rollback" # or "halt"
  parallelism = 10

  # Checked at plan time: any unmet item fails the plan, listing every one.
  readiness = {
    environment        = "production"
    owner              = "team-agents"
    on_call            = "agents-oncall"
    slo                = "99.9% of /healthz answers 200 over 30 days"
    max_canary_percent = 5
    min_observe        = "5m"
  }

  timeouts {
    create = "1h"
    update = "1h"
    delete = "30m"
  }
}

# Several services are promoted one after another with depends_on; each release reverts only
# itself. Give each release on a shared fleet its own name.
resource "canary_release" "sidecar" {
  name            = "sidecar"
  fleet           = canary_fleet.agents
  version         = "1.8.2"
  deploy          = { command = "sudo /opt/sidecar/install {{.Version}}" }
  revert          = { command = "sudo /opt/sidecar/install {{.PreviousVersion}}" }
  version_command = "cat /opt/sidecar/VERSION"
  guards          = [canary_guard.health]
  stages = [
    { name = "canary", hosts = "1", observe = "5m" },
    { name = "fleet", hosts = "100%", observe = "1m" },
  ]
  depends_on = [canary_release.agent]
}
