# The sources production runs: all but the development package (the emulator), the tests and the
# benchmarks, which need the development requirements.
FROM python:3.12-slim AS sources
COPY . /app
RUN rm -r /app/devtools /app/tests /app/bench

FROM python:3.12-slim AS portal

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORTAL_VAR_DIR=/var/lib/portal
WORKDIR /app

# The runtime only (requirements/base.txt, every file checked against its hash): no emulator and
# no test tools in the image that runs the portal.
COPY requirements/ requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/base.txt

COPY --from=sources /app/ ./
# Collected with production's storage (hashed names and their manifest), which needs production
# settings; these placeholders exist only for this build step, never at run time.
RUN PORTAL_ENV=production DJANGO_SECRET_KEY=collectstatic-only DJANGO_ALLOWED_HOSTS=build \
    DATABASE_URL=postgres://build/build REDIS_URL=redis://build:6379/0 EMAIL_HOST=build \
    python manage.py collectstatic --no-input \
 && useradd --system --home /var/lib/portal portal \
 && mkdir -p /var/lib/portal && chown portal /var/lib/portal
USER portal

EXPOSE 8000
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]

# The demo's image (docker-compose.demo.yml): the portal with the development requirements and
# the AWS emulator. Never a deployment.
FROM portal AS demo
USER root
RUN pip install --no-cache-dir --require-hashes -r requirements/dev.txt
COPY devtools/ devtools/
USER portal

# The last stage is what `docker build .` makes: the portal alone.
FROM portal
