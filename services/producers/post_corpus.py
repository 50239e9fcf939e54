"""What the replayed posts say: topics, sentences per language and mood, places and names.

The words of the text-sentiment corpus, apart from how posts are put together
(`services.producers.post_stream`): sentences carry clear positive, negative or neutral
wording so VADER's scores spread over all three labels, in the three languages the original
asked Twitter for.
"""

from __future__ import annotations

# What the original tracked (Twitter-Stream-S3.py).
TOPICS = (
    "Databricks",
    "data science",
    "AI/ML",
    "data lake",
    "machine learning",
    "lakehouse",
    "DLT",
    "Delta Live Tables",
)
SOURCES = (
    '<a href="https://mobile.twitter.com" rel="nofollow">Twitter Web App</a>',
    '<a href="http://twitter.com/download/iphone" rel="nofollow">Twitter for iPhone</a>',
    '<a href="http://twitter.com/download/android" rel="nofollow">Twitter for Android</a>',
    '<a href="https://buffer.com" rel="nofollow">Buffer</a>',
)
PLACES = (
    ("San Francisco, CA", "US", "United States", 37.7749, -122.4194),
    ("Berlin, Germany", "DE", "Germany", 52.5200, 13.4050),
    ("Madrid, Spain", "ES", "Spain", 40.4168, -3.7038),
    ("Amsterdam, The Netherlands", "NL", "Netherlands", 52.3676, 4.9041),
    ("New York, NY", "US", "United States", 40.7128, -74.0060),
    ("Munich, Germany", "DE", "Germany", 48.1351, 11.5820),
    ("Barcelona, Spain", "ES", "Spain", 41.3874, 2.1686),
    ("London, England", "GB", "United Kingdom", 51.5072, -0.1276),
)

# Sentences per language and mood; {topic} is one tracked topic, {other} another.
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "positive": (
            "Just shipped our first {topic} pipeline and it is amazing, great work team!",
            "Loving how easy {topic} makes streaming. Best decision we made this year",
            "Wow, {topic} plus {other} is a fantastic combo. Highly recommend it",
            "Super excited to speak about {topic} next week, come say hi!",
            "{topic} saved us hours every day. Brilliant and simple, thank you",
            "Great talk on {topic} today, clear, fun and really inspiring",
            "Our {other} costs dropped a lot after moving to {topic}. Happy engineers!",
            "Finally understood {topic}, what a beautiful idea. Enjoying every minute",
            "The {topic} community is so helpful, thanks for the quick answers",
            "Proud of our team: {topic} in production, zero incidents, great results",
            "{topic} keynote was excellent, impressive demos of {other}",
        ),
        "negative": (
            "Spent all day fighting {topic} errors. Frustrating and painful",
            "Why is {topic} so slow today? Terrible experience, nothing works",
            "{topic} broke our {other} job again, awful night on call",
            "Disappointed by the {topic} docs, confusing and wrong",
            "Hate it when {topic} fails silently. Lost data, angry users",
            "Worst outage ever, {topic} cluster crashed and the {other} team is sad",
            "{topic} pricing is a nightmare, bad surprise on the bill",
            "Sad to see {topic} jobs stuck for hours, ugly bugs everywhere",
            "Ugh, {topic} migration failed and our {other} dashboard is broken",
        ),
        "neutral": (
            "Reading about {topic} and {other} this afternoon",
            "How does {topic} handle schema changes? Asking for a project",
            "Notes from the {topic} session are in the thread",
            "New blog post: {topic} for {other} engineers",
            "Is anyone running {topic} on premises?",
            "Workshop on {topic} starts at 10:00 in room B",
            "Comparing {topic} and {other} for our next platform",
            "Slides for the {topic} meetup are online",
            "Migrating from {other} to {topic} this quarter",
        ),
    },
    "de": {
        "positive": (
            "{topic} ist einfach großartig, unser Team ist begeistert!",
            "Toller Vortrag über {topic} und {other} heute, vielen Dank",
            "Mit {topic} läuft unsere Pipeline endlich stabil. Super!",
        ),
        "negative": (
            "{topic} hat heute wieder alles kaputt gemacht, sehr ärgerlich",
            "Die Doku zu {topic} ist leider schlecht und verwirrend",
            "Stundenlang Fehler in {topic} gesucht, furchtbar",
        ),
        "neutral": (
            "Heute lese ich über {topic} und {other}",
            "Wer nutzt {topic} schon in Produktion?",
            "Neuer Artikel: {topic} für {other} Teams",
        ),
    },
    "es": {
        "positive": (
            "¡{topic} es increíble, nuestro equipo está encantado!",
            "Gran charla sobre {topic} y {other}, muchas gracias",
            "Con {topic} todo funciona mucho mejor. ¡Genial!",
        ),
        "negative": (
            "{topic} falló otra vez, qué frustración",
            "La documentación de {topic} es mala y confusa",
            "Horas perdidas con errores de {topic}, terrible",
        ),
        "neutral": (
            "Leyendo sobre {topic} y {other} esta tarde",
            "¿Alguien usa {topic} en producción?",
            "Nuevo artículo: {topic} para equipos de {other}",
        ),
    },
}
MOODS = ("positive", "negative", "neutral")
# Optional words before and after a sentence, so the same sentence scores differently.
OPENERS: dict[str, tuple[str, ...]] = {
    "en": ("Honestly,", "Quick update:", "Day 2 of the conference:", "Hot take:", "PSA:"),
    "de": ("Ehrlich gesagt:", "Kurzes Update:", "Tag 2 der Konferenz:"),
    "es": ("Sinceramente,", "Actualización rápida:", "Día 2 de la conferencia:"),
}
CLOSERS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "positive": (
            "Can't wait to see what's next!",
            "Kudos to everyone involved.",
            "Love this community :)",
            "So good.",
            "Absolutely wonderful!!!",
        ),
        "negative": (
            "Not impressed.",
            "Really annoying.",
            "Sigh.",
            "Please fix this :(",
            "This is the worst!!!",
        ),
        "neutral": ("Thoughts?", "Link below.", "More soon.", "Details in the docs."),
    },
    "de": {
        "positive": ("Weiter so!", "Danke an alle."),
        "negative": ("Echt nervig.", "Bitte reparieren."),
        "neutral": ("Meinungen?", "Link unten."),
    },
    "es": {
        "positive": ("¡Sigan así!", "Gracias a todos."),
        "negative": ("Muy molesto.", "Por favor, arréglenlo."),
        "neutral": ("¿Opiniones?", "Enlace abajo."),
    },
}
FIRST_NAMES = ("Ana", "Ben", "Carla", "Dirk", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas")
LAST_NAMES = ("Meyer", "Garcia", "Smith", "Schulz", "Lopez", "Brown", "Weber", "Ruiz", "Lee")
