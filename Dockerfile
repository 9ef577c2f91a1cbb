# One image for the web server, the validation worker and the scheduler.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=hubsite.settings.prod HUB_VAR_DIR=/var/lib/adapterhub
WORKDIR /app

# The CPU build of torch; a GPU worker image can swap in a CUDA build with TORCH_INDEX_URL.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" torch==2.13.0

COPY pyproject.toml README.md ./
COPY hubsite hubsite
COPY registry registry
COPY validator validator
COPY adapters_client adapters_client
COPY manage.py ./
RUN pip install --no-cache-dir ".[hub]" \
    && useradd --system --home /var/lib/adapterhub adapterhub \
    && mkdir -p /var/lib/adapterhub/upload-tmp \
    && HUB_SECRET_KEY=build DATABASE_URL=sqlite:////tmp/build.db REDIS_URL=redis://localhost \
       python manage.py collectstatic --noinput \
    && chown -R adapterhub /var/lib/adapterhub
USER adapterhub
EXPOSE 8000
CMD ["gunicorn", "hubsite.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4", "--timeout", "300"]
