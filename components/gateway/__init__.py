"""The inference gateway: Envoy Gateway, certificates, DNS, InferencePools and their endpoint pickers, tenants."""
