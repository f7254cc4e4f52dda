provider "canary" {
  ssh = {
    user             = "deploy"
    private_key      = file("~/.ssh/id_ed25519") # or use_agent = true
    known_hosts_file = "~/.ssh/known_hosts"      # host keys are checked strictly
    bastion          = { host = "bastion.example.com" }
  }
}
