# One image for both roles: the web (gunicorn) and the worker (celery); compose picks the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml requirements-nodeps.txt README.md ./
COPY shared shared
COPY web web
COPY worker worker
COPY batch batch
COPY training training
# The worker serves the TFLite export, so the image needs LiteRT but not TensorFlow.
RUN pip install '.[worker]' && pip install --no-deps -r requirements-nodeps.txt
COPY templates templates
COPY static static
COPY models models
RUN useradd --create-home --uid 1000 dfd && mkdir -p /data/uploads && chown dfd /data/uploads
USER dfd
ENV DFD_UPLOAD_DIR=/data/uploads DFD_MODEL_PATH=/app/models/dfd-mnv2
EXPOSE 5000
CMD ["gunicorn", "-k", "gthread", "-w", "2", "--threads", "8", "-b", "0.0.0.0:5000", "web.wsgi:app"]
