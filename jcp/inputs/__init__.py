"""What is mounted into the pod: the ConfigMap directory and the dockerconfigjson secrets, read
with bounded, non-blocking reads, and watched (the kubelet swaps `..data`)."""
