from neutrality_forecast.cli import app

app()
