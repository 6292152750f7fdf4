"""Places to run jobs: ``local`` (fresh processes on this machine); a Ray executor comes later."""
