# The Spark image of spark-connect.yaml: Apache Spark's own image (a hub's apache/spark), at the
# version requirements.txt pins for pyspark, plus the jars pyspark does not ship (Kafka source,
# S3A, JDBC), as infra/maven/spark-extras.pom.xml resolves them, and the local stack's logging
# (infra/spark/log4j2.properties: Spark's defaults, the Kafka client at WARN). The build context
# is infra/. Not built here: this machine cannot pull apache/spark (docs/deploy-kubernetes.md
# says what was checked).
#   mvn -f infra/maven/spark-extras.pom.xml dependency:copy-dependencies -DoutputDirectory=infra/kubernetes/jars
#   docker build -f infra/kubernetes/spark.Dockerfile -t registry.example.org/loopline-spark:4.2.0 infra
FROM apache/spark:4.2.0-python3
COPY kubernetes/jars/ /opt/spark/jars/
# Spark reads $SPARK_HOME/conf/log4j2.properties when no other configuration is named.
COPY spark/log4j2.properties /opt/spark/conf/log4j2.properties
