# Same steps as the README's install: a venv, `pip install .`, then the pharmamod command.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 pharmamod
WORKDIR /app
COPY . /app
RUN python3 -m venv /opt/pharmamod && /opt/pharmamod/bin/pip install --no-cache-dir . \
    && PHARMAMOD_CACHE_DIR=/opt/pharmamod/cache /opt/pharmamod/bin/pharmamod rules test \
    && chown -R pharmamod /opt/pharmamod/cache \
    && mkdir -p /data/examples && cp config.example.toml /data/ && cp examples/* /data/examples/ \
    && chown -R pharmamod /data
ENV PATH=/opt/pharmamod/bin:$PATH PHARMAMOD_CACHE_DIR=/opt/pharmamod/cache
USER pharmamod
# /data holds config.toml, the store and the output folders; mount your own there.
WORKDIR /data
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)" || exit 1
ENTRYPOINT ["pharmamod"]
CMD ["run", "--config", "/data/config.example.toml"]
