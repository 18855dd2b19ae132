# The govchat server. Rasa runs in its own container from the official image (docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot bot
COPY knowledge_base knowledge_base
COPY channels channels
COPY casework casework
COPY admin admin
COPY server server
RUN pip install --no-cache-dir '.[postgres]'
ENV GOVCHAT_HOST=0.0.0.0,:: RASA_MANAGE=0 GOVCHAT_VAR_DIR=/app/var
EXPOSE 8080
CMD ["govchat", "run"]
