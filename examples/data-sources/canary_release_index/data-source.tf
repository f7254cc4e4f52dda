# The verified history of a release: its signature is checked on every read.
data "canary_release_index" "agent" {
  fleet   = canary_fleet.agents.name
  release = canary_release.agent.name
}

output "release_history" {
  value = {
    active  = data.canary_release_index.agent.active_version
    channel = data.canary_release_index.agent.channel
    events  = [for e in data.canary_release_index.agent.events : "${e.sequence} ${e.action} ${e.version} ${e.result} by ${e.actor} ${e.ticket}"]
  }
}
