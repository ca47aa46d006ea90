# Mnemo's HTTP API. `docker compose up` builds and runs it with PostgreSQL (docker-compose.yaml).
# Alone: docker build -t mnemo . && docker run -e DATABASE_URL=... -e APP_ADMIN_TOKEN=... -p 127.0.0.1:8000:8000 mnemo
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# dal/ reads queries/ and migrations/ from the folder above itself (dal/settings.py:
# PROJECT_DIR), so the project stays a source tree here, installed in editable mode. A plain
# `pip install .` would look for them in site-packages and fail at import.
WORKDIR /srv/mnemo

# libmagic: attachments are sniffed with it (python-magic), and the slim image lacks it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 \
    && rm -rf /var/lib/apt/lists/*

# Dependencies in a layer of their own, rebuilt only when pyproject.toml changes: install
# against placeholder packages, which the real sources replace below (an editable install
# finds dal/ and app/ by path at import time).
COPY pyproject.toml README.md ./
RUN mkdir dal app \
    && touch dal/__init__.py app/__init__.py \
    && pip install -e . \
    && rm -r dal app

COPY . .
RUN python -m compileall -q dal app

# An unprivileged user. DATA_DIR holds the generated admin token when APP_ADMIN_TOKEN is unset
# (and the embedded PostgreSQL when DATABASE_URL is unset), so it must be writable.
RUN useradd --system --user-group --uid 10001 --no-create-home --home-dir /srv/mnemo mnemo \
    && mkdir -p /var/lib/mnemo \
    && chown mnemo:mnemo /var/lib/mnemo
USER mnemo

ENV APP_HOST=0.0.0.0 \
    APP_PORT=8000 \
    DATA_DIR=/var/lib/mnemo
EXPOSE 8000

# `mnemo serve` (the console script); `mnemo --help` lists the other commands.
CMD ["mnemo", "serve"]
