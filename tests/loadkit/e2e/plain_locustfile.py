"""A plain Locust file that knows nothing of loadkit: loadkit run must pace it anyway."""

from locust import FastHttpUser, constant, task


class Visitor(FastHttpUser):
    wait_time = constant(0)

    @task
    def home(self) -> None:
        self.client.get("/", name="home")
