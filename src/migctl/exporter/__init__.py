"""``migctl exporter``: a Prometheus exporter for MIG nodes, built on prometheus_client.

It speaks dcgm-exporter's metric names and labels (so its Grafana dashboards work unchanged)
from NVML alone, per GPU instance where dcgm-exporter cannot (memory on H100, utilization from
GPM), and adds migctl's own series: the layout, leases, batch jobs, the last apply.
:mod:`.families` turns an observation into metric families; :mod:`.service` runs the
background collector, the cache and the HTTP server. See ``docs/observability.md``.
"""
