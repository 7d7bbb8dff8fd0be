# The user-code image of marquee for Kubernetes (deploy/values.yaml, Dagster's Helm chart): the
# code location's gRPC server, and the image every run pod of the K8sRunLauncher starts from.
# Build: docker build -t registry.example.com/marquee:$(git rev-parse --short HEAD) .
FROM python:3.11-slim

ENV DO_NOT_TRACK=1 \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MARQUEE_DATA_DIR=/data

WORKDIR /opt/marquee
COPY pyproject.toml README.md workspace.yaml ./
COPY resources/ resources/
COPY assets/ assets/
COPY pipelines/ pipelines/
COPY sandbox/ sandbox/
COPY dbt_project/ dbt_project/

# Editable, so the code finds dbt_project/ next to its packages (resources/settings.py), where a
# plain install into site-packages would lose it. The import parses the dbt project once (offline)
# and fails the build, not the pod, when the code location cannot load.
RUN pip install -e '.[postgres,k8s,s3]' \
 && python -c "import pipelines.definitions"

# Not root. dbt writes its target/ under dbt_project/; the lake, the DuckDB files and the catalog go
# to MARQUEE_DATA_DIR, a volume (deploy/values.yaml mounts a shared one until the lake is on S3).
RUN useradd --create-home --uid 10001 marquee \
 && mkdir -p /data \
 && chown -R marquee /opt/marquee /data
USER 10001

EXPOSE 3030
# What the chart runs is `dagster api grpc -h 0.0.0.0 -p 3030` plus dagsterApiGrpcArgs; this default
# is the same server, for `docker run`.
CMD ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", "3030", "-m", "pipelines.definitions"]
