from . import ai_generation_demo
