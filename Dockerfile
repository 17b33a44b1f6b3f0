# One image for every Storyloom service: worker, telegram, discord.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STORYLOOM_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bots ./bots
COPY pipeline ./pipeline
COPY providers ./providers
RUN pip install .

RUN useradd --create-home --uid 1000 storyloom && mkdir -p /data && chown storyloom /data
USER storyloom
VOLUME ["/data"]

ENTRYPOINT ["storyloom"]
CMD ["worker"]
