-- Databases Loopline uses, for the docker-compose PostgreSQL (infra/stack.py does the same natively).
CREATE DATABASE airflow OWNER loopline;
CREATE DATABASE mlflow OWNER loopline;
