# Same steps as the README's install: a venv, `pip install .`, then the pharmamod command.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 pharmamod
WORKDIR /app
COPY . /app
RUN python3 -m venv /opt/pharmamod && /opt/pharmamod/bin/pip install --no-cache-dir . \
    && PHARMAMOD_CACHE_DIR=/opt/pharmamod/cache /opt/pharmamod/bin/pharmamod rules test \
    && chown -R pharmamod /opt/pharmamod/cache
ENV PATH=/opt/pharmamod/bin:$PATH PHARMAMOD_CACHE_DIR=/opt/pharmamod/cache
USER pharmamod
HEALTHCHECK CMD pharmamod check "healthcheck" >/dev/null || exit 1
ENTRYPOINT ["pharmamod"]
CMD ["scan", "examples/community.jsonl"]
