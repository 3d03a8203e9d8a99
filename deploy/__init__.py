"""Running Reqflow scaled out: `make cluster` (cluster.py), the services it needs (services.py), the nginx template."""
