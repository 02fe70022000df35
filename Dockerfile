# One image for both roles: the web (gunicorn) and the worker (celery); compose picks the command.
# Built from the wheel: the running image holds the installed package (code, page templates and
# static files, the model as data files), not the source tree.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY . .
RUN pip wheel --no-deps -w /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY --from=build /wheels /wheels
COPY requirements-nodeps.txt /tmp/
# The worker serves the TFLite export, so the image needs LiteRT but not TensorFlow.
RUN pip install "$(ls /wheels/dfd-*.whl)[worker]" \
    && pip install --no-deps -r /tmp/requirements-nodeps.txt && rm -rf /wheels /tmp/*
RUN useradd --create-home --uid 1000 dfd && mkdir -p /data/uploads && chown dfd /data/uploads
USER dfd
WORKDIR /home/dfd
ENV DFD_UPLOAD_DIR=/data/uploads
EXPOSE 5000
CMD ["gunicorn", "-k", "gthread", "-w", "2", "--threads", "8", "-b", "0.0.0.0:5000", "web.wsgi:app"]
