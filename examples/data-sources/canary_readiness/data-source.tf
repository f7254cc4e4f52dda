# The readiness checklist of a release, as the plan-time gate evaluates it.
data "canary_readiness" "agent" {
  release = canary_release.agent
}

output "readiness" {
  value = {
    verdict = data.canary_readiness.agent.verdict
    unmet   = [for i in data.canary_readiness.agent.items : "${i.name}: ${i.detail}" if !i.ok]
  }
}
