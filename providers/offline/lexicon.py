"""Word lists for the offline script writer: English parts of speech, roles, animals, places,
and the stems that let ideas in other scripts pick a painter-friendly kind and setting.

Data only; the rules that use it live in ``providers.offline.script``.
"""

from __future__ import annotations

from typing import Literal


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


DETERMINERS = _set(
    "a an the his her their its my our your this these those some one two three four five "
    "several many every each no another"
)
NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "several": 3, "many": 3}
PREPOSITIONS = _set(
    "in on at by near with from to into onto of for under over across through beyond behind "
    "beside between inside outside around among along toward towards after before during "
    "without about against upon off up down past"
)
CONJUNCTIONS = _set(
    "and but or so yet while when because who whom whose which that where until then as if "
    "though although once"
)
PRONOUNS = _set(
    "he she they it i we you him them us me someone everyone nobody something everything "
    "himself herself themselves itself"
)
ADVERBS = _set(
    "together then later suddenly soon meanwhile finally sometimes now today tomorrow "
    "yesterday there here never always once every one after before also still only even "
    "long far away back again"
)
AUXILIARIES = {
    "is": "was",
    "are": "were",
    "was": "was",
    "were": "were",
    "has": "had",
    "have": "had",
    "had": "had",
    "does": "did",
    "do": "did",
    "did": "did",
    "can": "could",
    "could": "could",
    "will": "would",
    "would": "would",
    "must": "had to",
    "should": "should",
    "may": "might",
    "might": "might",
    "be": "be",
    "been": "been",
}
IRREGULAR_PAST = {
    "become": "became",
    "begin": "began",
    "bring": "brought",
    "build": "built",
    "buy": "bought",
    "catch": "caught",
    "come": "came",
    "dig": "dug",
    "draw": "drew",
    "dream": "dreamed",
    "eat": "ate",
    "fall": "fell",
    "feel": "felt",
    "fight": "fought",
    "find": "found",
    "fly": "flew",
    "forget": "forgot",
    "get": "got",
    "give": "gave",
    "go": "went",
    "grow": "grew",
    "hear": "heard",
    "hide": "hid",
    "hold": "held",
    "keep": "kept",
    "know": "knew",
    "leave": "left",
    "lose": "lost",
    "make": "made",
    "meet": "met",
    "ride": "rode",
    "run": "ran",
    "see": "saw",
    "sell": "sold",
    "send": "sent",
    "sing": "sang",
    "sit": "sat",
    "sleep": "slept",
    "speak": "spoke",
    "spend": "spent",
    "stand": "stood",
    "steal": "stole",
    "swim": "swam",
    "take": "took",
    "teach": "taught",
    "tell": "told",
    "think": "thought",
    "throw": "threw",
    "understand": "understood",
    "wake": "woke",
    "win": "won",
    "write": "wrote",
    "break": "broke",
    "freeze": "froze",
    "shine": "shone",
    "light": "lit",
    "feed": "fed",
    "lead": "led",
    "read": "read",
    "sink": "sank",
    "hang": "hung",
    "swing": "swung",
    "weave": "wove",
    "wear": "wore",
    "bear": "bore",
    "seek": "sought",
    "choose": "chose",
    "rise": "rose",
    "drive": "drove",
    "blow": "blew",
}
REGULAR_VERBS = _set(
    "befriend help save rescue discover explore adopt follow guide protect chase visit open "
    "learn want try decide escape travel return search wander climb cross carry paint play "
    "dance collect repair fix invent sail walk jump hunt talk listen answer ask wish hope love "
    "miss watch guard train bake cook plant water shelter hatch tame trick race challenge "
    "enter reach arrive start stop change save dare fail bury call join share trade track "
    "unlock wait work worry believe remember notice appear vanish disappear drift float "
    "lift pull push rescue rescue mend heal cure deliver fetch guard chase attack defend "
    "whisper shout cry laugh smile hug kiss marry convince persuade teach struggle survive "
    "lose need seem turn look move live die kill hatch follow compete solve share plant "
    "open close guard hide sail fix save explore wants"
) | frozenset(IRREGULAR_PAST)

ADJECTIVES = _set(
    "old young little tiny small big giant huge lonely brave shy curious clever grumpy "
    "kind gentle wise tired sleepy hungry lost strange mysterious magical ancient secret "
    "quiet noisy happy sad angry wild tame fierce friendly retired elderly aged weathered "
    "bright dark golden silver wooden broken stranded abandoned forgotten rusty injured "
    "frightened nervous proud poor rich lazy busy stubborn timid bold last first only "
    "invisible talking flying singing dancing sleeping wandering baby new tall short fat "
    "thin cheerful grim mighty clumsy lucky unlucky hidden enchanted haunted"
)
COLOURS = _set(
    "red crimson scarlet orange amber yellow mustard golden gold green olive emerald teal "
    "turquoise blue navy indigo purple violet lilac lavender pink magenta brown tan beige "
    "cream white grey gray silver black charcoal ginger copper"
)
GARMENTS = _set(
    "coat jacket cloak cape dress hat scarf raincoat sweater jumper hoodie robe apron boots "
    "overalls armour armor suit shirt vest uniform helmet gown shawl cardigan"
)

PLACE_WORDS: dict[str, str] = {
    "sea": "the sea",
    "ocean": "the ocean",
    "beach": "the beach",
    "shore": "the shore",
    "coast": "the coast",
    "harbor": "the harbour",
    "harbour": "the harbour",
    "bay": "the bay",
    "island": "the island",
    "lighthouse": "the lighthouse",
    "forest": "the forest",
    "woods": "the woods",
    "wood": "the woods",
    "jungle": "the jungle",
    "city": "the city",
    "town": "the town",
    "village": "the village",
    "street": "the street",
    "streets": "the streets",
    "market": "the market",
    "mountain": "the mountains",
    "mountains": "the mountains",
    "hill": "the hills",
    "hills": "the hills",
    "valley": "the valley",
    "desert": "the desert",
    "river": "the river",
    "lake": "the lake",
    "pond": "the pond",
    "castle": "the castle",
    "palace": "the palace",
    "tower": "the tower",
    "house": "the house",
    "home": "home",
    "cottage": "the cottage",
    "kitchen": "the kitchen",
    "room": "the room",
    "attic": "the attic",
    "library": "the library",
    "school": "the school",
    "garden": "the garden",
    "field": "the field",
    "fields": "the fields",
    "meadow": "the meadow",
    "farm": "the farm",
    "cave": "the cave",
    "space": "space",
    "moon": "the moon",
    "stars": "the stars",
    "planet": "the planet",
    "sky": "the sky",
    "snow": "the snow",
    "ice": "the ice",
    "arctic": "the arctic",
    "swamp": "the swamp",
    "ship": "the ship",
    "boat": "the boat",
    "train": "the train",
    "station": "the station",
    "bakery": "the bakery",
    "shop": "the shop",
    "park": "the park",
    "bridge": "the bridge",
    "museum": "the museum",
    "zoo": "the zoo",
    "cliff": "the cliffs",
    "cliffs": "the cliffs",
    "rooftop": "the rooftops",
    "rooftops": "the rooftops",
    "tundra": "the tundra",
    "subway": "the subway",
    "metro": "the subway",
    "underground": "the subway",
    "classroom": "the classroom",
    "tavern": "the tavern",
    "inn": "the tavern",
    "pub": "the tavern",
    "tree": "the old tree",
    "clocktower": "the clock tower",
    "bedroom": "the bedroom",
}
# Places that are names: a setting, never a character ("Mars", "Paris").
PLACE_NAMES: dict[str, str] = {
    "Mars": "the red desert of Mars",
    "Venus": "the clouds of Venus",
    "Jupiter": "space near Jupiter",
    "Saturn": "space by the rings of Saturn",
    "Earth": "the Earth",
    **{
        city: f"the streets of {city}"
        for city in _set(
            "Paris London Tokyo Cairo Rome Venice Berlin Madrid Lisbon Vienna Prague Athens "
            "Istanbul Moscow Beijing Shanghai Delhi Mumbai Bangkok Seoul Sydney Dublin "
            "Amsterdam Barcelona Kyoto Marrakesh Havana Lagos Nairobi Lima Chicago Boston"
        )
    },
    "York": "the streets of New York",
    "Atlantis": "the sunken city of Atlantis",
    "Sahara": "the Sahara desert",
    "Amazon": "the Amazon jungle",
    "Everest": "the slopes of Everest",
    "Antarctica": "the ice of Antarctica",
    "Arctic": "the arctic ice",
}
# Words that look like characters (capitalised, or ending like "baker") but are not anyone.
NOT_ANYONE = _set(
    "end time world very hello beginning story life love day night morning evening summer "
    "winter spring autumn fall water weather river tower corner paper silver thunder dinner "
    "number letter flower center centre danger power wonder hunger laughter matter answer "
    "colour color door floor mirror error harbor anchor dream dreams case midnight dark "
    "sun moon stars sky rain snow storm fog wind future past adventure journey kingdom "
    "together everything nothing something everyone once upon"
)
# Weather words of an idea and the weather the scenery shows.
WEATHER: dict[str, str] = {
    "stormy": "storm", "storm": "storm", "thunder": "storm", "thunderstorm": "storm",
    "lightning": "storm", "rainy": "rain", "rain": "rain", "raining": "rain",
    "foggy": "fog", "fog": "fog", "misty": "fog", "mist": "fog",
    "snowy": "snow", "snow": "snow", "snowing": "snow", "blizzard": "snow",
    "windy": "wind", "wind": "wind",
}
# Time of day words of an idea.
TIME_WORDS: dict[str, Literal["dawn", "day", "dusk", "night"]] = {
    "dawn": "dawn", "sunrise": "dawn", "morning": "dawn", "rises": "dawn",
    "noon": "day", "afternoon": "day",
    "dusk": "dusk", "sunset": "dusk", "evening": "dusk", "twilight": "dusk",
    "night": "night", "midnight": "night", "nighttime": "night", "dark": "night",
}

# Where a character implies the story happens when the idea names no place.
IMPLIED_PLACE: dict[str, str] = {
    "whale": "the sea",
    "fish": "the sea",
    "dolphin": "the sea",
    "shark": "the sea",
    "octopus": "the sea",
    "mermaid": "the sea",
    "sailor": "the sea",
    "pirate": "the sea",
    "fisherman": "the sea",
    "captain": "the sea",
    "keeper": "the sea",
    "seal": "the shore",
    "crab": "the beach",
    "turtle": "the beach",
    "astronaut": "space",
    "alien": "the stars",
    "robot": "the city",
    "knight": "the castle",
    "king": "the castle",
    "queen": "the castle",
    "princess": "the castle",
    "prince": "the castle",
    "dragon": "the mountains",
    "goat": "the mountains",
    "camel": "the desert",
    "farmer": "the fields",
    "fox": "the forest",
    "bear": "the forest",
    "panda": "the bamboo forest",
    "deer": "the forest",
    "wolf": "the forest",
    "owl": "the forest",
    "penguin": "the snow",
    "yeti": "the snow",
    "baker": "the bakery",
    "witch": "the forest",
    "wizard": "the tower",
    "cat": "the rooftops",
    "dog": "the park",
    "duck": "the pond",
    "frog": "the pond",
    "horse": "the meadow",
    "bird": "the sky",
    "grandma": "the cottage",
    "grandpa": "the cottage",
    "grandmother": "the cottage",
    "grandfather": "the cottage",
    "chef": "the kitchen",
    "teapot": "the kitchen",
}
PREDICATE_ADJECTIVES = _set(
    "afraid scared alone asleep awake alive unable able ashamed aware sure certain"
)
ANIMALS = _set(
    "whale fish dolphin shark octopus seal crab turtle cat kitten dog puppy bird owl crow "
    "raven sparrow robin penguin parrot duck goose swan horse pony donkey unicorn dragon "
    "fox wolf bear cub deer rabbit bunny hare mouse mice rat squirrel hedgehog badger otter "
    "frog toad snail bee butterfly spider lion tiger elephant giraffe monkey goat sheep cow "
    "pig chicken hen camel yeti dinosaur snake lizard bat moth beetle ant panda"
)
PEOPLE = _set(
    "girl boy man woman kid kids child children baby king queen prince princess knight "
    "witch wizard pirate mermaid grandma grandpa grandmother grandfather mother father mom "
    "dad sister brother aunt uncle friend stranger giant ghost robot alien astronaut "
    "detective scientist farmer sailor fisherman captain teacher student doctor nurse "
    "musician artist painter poet thief soldier chef cook baker keeper traveller traveler "
    "explorer inventor orphan hero monster troll elf fairy goblin gnome android cyborg "
    "family couple twins villagers people crew bard commuter grandson granddaughter students "
    "clockmaker snowman librarian knights witches"
)
PERSON_SUFFIXES = ("er", "or", "ist", "ian", "man", "woman", "ess", "ant", "ent")

# Role -> (outfit, daily routine). The routine reads after "Every day, <who> ...".
ROLES: dict[str, tuple[str, str]] = {
    "keeper": (
        "a yellow oilskin coat and heavy boots",
        "climbed the stairs to keep the lamp burning",
    ),
    "sailor": ("a navy pea coat and a knitted cap", "mended nets and read the wind"),
    "fisherman": ("a green waxed jacket and a wool cap", "cast the nets at first light"),
    "captain": ("a navy coat with brass buttons", "charted the same careful course"),
    "pirate": ("a red bandana and a patched coat", "scanned the horizon for treasure"),
    "knight": ("dented silver armour and a red cloak", "polished the armour and stood guard"),
    "king": ("a gold crown and a crimson cape", "listened to the worries of the realm"),
    "queen": ("a gold crown and a deep blue gown", "listened to the worries of the realm"),
    "princess": ("a rose-pink dress and a small tiara", "slipped away from the palace lessons"),
    "prince": ("a teal tunic and a small circlet", "practised sword drills in the courtyard"),
    "witch": ("a pointed purple hat and a long black cloak", "stirred the bubbling cauldron"),
    "wizard": ("a starry blue robe and a tall hat", "studied the dusty spellbooks"),
    "baker": ("a flour-dusted white apron", "rose before the sun to bake the bread"),
    "chef": ("a white chef's jacket and tall hat", "chopped, stirred and tasted"),
    "astronaut": ("a white space suit with an orange patch", "checked every gauge on board"),
    "scientist": ("a white lab coat and round goggles", "scribbled notes and ran experiments"),
    "inventor": ("a brown leather apron and brass goggles", "tinkered with gears and springs"),
    "farmer": ("green overalls and a straw hat", "tended the crops and fed the animals"),
    "detective": ("a tan trench coat and a felt hat", "walked the streets looking for clues"),
    "teacher": ("a mustard cardigan and reading glasses", "rang the bell and opened the books"),
    "doctor": ("a white coat and a stethoscope", "visited patient after patient"),
    "musician": ("a velvet green jacket", "played the same tune for passers-by"),
    "painter": ("a paint-splattered blue smock", "mixed colours by the window"),
    "artist": ("a paint-splattered blue smock", "sketched everything in a worn notebook"),
    "robot": ("a riveted teal metal shell and one round lamp eye", "swept the empty streets"),
    "explorer": ("a khaki jacket and a wide-brimmed hat", "studied maps of places not yet seen"),
    "grandma": ("a lavender cardigan and a silver bun", "knitted by the window"),
    "grandmother": ("a lavender cardigan and a silver bun", "knitted by the window"),
    "grandpa": ("a brown tweed jacket and a flat cap", "told the same old stories"),
    "grandfather": ("a brown tweed jacket and a flat cap", "told the same old stories"),
}
ANIMAL_LOOKS: dict[str, str] = {
    "whale": "slate-blue whale with a pale belly and barnacle-speckled fins",
    "fish": "orange fish with shimmering scales",
    "cat": "ginger cat with a white chest and green eyes",
    "kitten": "ginger kitten with a white chest and big green eyes",
    "dog": "brown dog with floppy ears and a red collar",
    "puppy": "brown puppy with floppy ears and a red collar",
    "fox": "orange fox with a white-tipped tail",
    "bear": "brown bear with a round snout",
    "panda": "white panda with black ears, black eye patches and black legs",
    "bird": "blue bird with a yellow beak",
    "owl": "brown owl with large amber eyes",
    "horse": "chestnut horse with a dark mane",
    "dragon": "green dragon with bat wings and a spiny back",
    "wolf": "grey wolf with pale eyes",
    "rabbit": "grey rabbit with long ears",
    "penguin": "black and white penguin with an orange beak",
    "turtle": "green sea turtle with a patterned shell",
    "mouse": "small grey mouse with pink ears",
}
NON_HUMAN = _set("robot android cyborg ghost alien monster troll golem")
OLD_ROLES = _set("grandma grandpa grandmother grandfather king queen wizard")
PLACE_PREPOSITION: dict[str, str] = {
    "sea": "by",
    "ocean": "by",
    "shore": "on",
    "coast": "on",
    "harbour": "in",
    "bay": "by",
    "river": "by",
    "lake": "by",
    "pond": "by",
    "beach": "on",
    "island": "on",
    "rooftops": "on",
    "ship": "aboard",
    "boat": "aboard",
    "street": "on",
    "streets": "on",
    "hills": "in",
    "cliffs": "on",
    "moon": "on",
    "ice": "on",
    "lighthouse": "at",
    "castle": "at",
    "palace": "at",
    "tower": "at",
    "station": "at",
    "bakery": "at",
    "shop": "at",
    "school": "at",
    "museum": "at",
    "zoo": "at",
    "bridge": "on",
    "farm": "on",
    "market": "at",
    "home": "at",
}
FALLBACK_COLOURS = ["red", "yellow", "teal", "blue", "green", "orange", "purple", "pink"]
HAIR_COLOURS = ["black", "brown", "auburn", "blonde", "dark brown", "red"]
FEATURES = ["round glasses", "freckles", "a knitted scarf", "a satchel", "rosy cheeks"]


# --------------------------------------------------------------------------- other scripts

# Word stems in other languages and scripts, only to pick a painter-friendly kind and setting;
# the narration itself is never translated.
KIND_STEMS: dict[str, str] = {
    "кит": "whale",
    # Prefixes of whole words: kept long enough not to catch everyday words (ежедневно, совсем).
    "ёж": "hedgehog",
    "ежик": "hedgehog",
    "ежон": "hedgehog",
    "заяц": "hare",
    "зайч": "hare",
    "зайц": "hare",
    "волк": "wolf",
    "сова": "owl",
    "совы": "owl",
    "сову": "owl",
    "совён": "owl",
    "мышь": "mouse",
    "мышк": "mouse",
    "мышон": "mouse",
    "белк": "squirrel",
    "кролик": "rabbit",
    "кош": "cat",
    "собак": "dog",
    "птиц": "bird",
    "лис": "fox",
    "медвед": "bear",
    "дракон": "dragon",
    "робот": "robot",
    "лошад": "horse",
    "рыб": "fish",
    "鲸": "whale",
    "鯨": "whale",
    "猫": "cat",
    "狗": "dog",
    "犬": "dog",
    "鸟": "bird",
    "鳥": "bird",
    "狐": "fox",
    "熊": "bear",
    "龙": "dragon",
    "龍": "dragon",
    "机器人": "robot",
    "ロボット": "robot",
    "马": "horse",
    "馬": "horse",
    "鱼": "fish",
    "魚": "fish",
    "حوت": "whale",
    "قط": "cat",
    "كلب": "dog",
    "طائر": "bird",
    "تنين": "dragon",
    "לווייתן": "whale",
    "חתול": "cat",
    "כלב": "dog",
    "ציפור": "bird",
    "דרקון": "dragon",
    "ballena": "whale",
    "baleine": "whale",
    "wal": "whale",
    "gato": "cat",
    "chat": "cat",
    "perro": "dog",
    "chien": "dog",
    "hund": "dog",
    "zorro": "fox",
    "renard": "fox",
    "熊猫": "panda",
    "パンダ": "panda",
    "панд": "panda",
    "panda": "panda",
    "dragón": "dragon",
    "dragão": "dragon",
    "drache": "dragon",
    "drago": "dragon",
    "हाथी": "elephant",
    "balena": "whale",
    "baleia": "whale",
}
PLACE_STEMS: dict[str, str] = {
    "маяк": "the lighthouse",
    "灯塔": "the lighthouse",
    "燈塔": "the lighthouse",
    "منار": "the lighthouse",
    "מגדלור": "the lighthouse",
    "faro": "the lighthouse",
    "phare": "the lighthouse",
    "leuchtturm": "the lighthouse",
    "мор": "the sea",
    "海": "the sea",
    "بحر": "the sea",
    "mar": "the sea",
    "mer": "the sea",
    "meer": "the sea",
    "берег": "the beach",
    "пляж": "the beach",
    "شاطئ": "the beach",
    "חוף": "the beach",
    "playa": "the beach",
    "plage": "the beach",
    "strand": "the beach",
    "лес": "the forest",
    "森": "the forest",
    "غاب": "the forest",
    "יער": "the forest",
    "bosque": "the forest",
    "forêt": "the forest",
    "wald": "the forest",
    "город": "the city",
    "城市": "the city",
    "都市": "the city",
    "مدين": "the city",
    "עיר": "the city",
    "ciudad": "the city",
    "ville": "the city",
    "stadt": "the city",
    "гора": "the mountains",
    "горы": "the mountains",
    "山": "the mountains",
    "جبل": "the mountains",
    "montaña": "the mountains",
    "montagne": "the mountains",
    "berg": "the mountains",
    "пустын": "the desert",
    "沙漠": "the desert",
    "صحراء": "the desert",
    "מדבר": "the desert",
    "desierto": "the desert",
    "désert": "the desert",
    "снег": "the snow",
    "雪": "the snow",
    "ثلج": "the snow",
    "שלג": "the snow",
    "nieve": "the snow",
    "neige": "the snow",
    "schnee": "the snow",
    "космос": "space",
    "宇宙": "space",
    "فضاء": "space",
    "חלל": "space",
    "замок": "the castle",
    "城堡": "the castle",
    "قلعة": "the castle",
    "טירה": "the castle",
    "castillo": "the castle",
    "château": "the castle",
    "schloss": "the castle",
    "река": "the river",
    "реки": "the river",
    "河": "the river",
    "نهر": "the river",
    "נהר": "the river",
    "río": "the river",
    "дом": "the house",
    "家": "the house",
    "بيت": "the house",
    "בית": "the house",
    "casa": "the house",
    "maison": "the house",
    "haus": "the house",
}
PLACE_STEMS.update({
    "竹林": "the bamboo forest",
    "jardín": "the garden",
    "floresta": "the forest",
    "foresta": "the forest",
    "spiaggia": "the beach",
    "praia": "the beach",
    "mare": "the sea",
    "जंगल": "the forest",
    "समुद्र": "the sea",
    "पहाड़": "the mountains",
    "月": "the moon",
    "луна": "the moon",
    "луну": "the moon",
    "القمر": "the moon",
    "luna": "the moon",
    "lune": "the moon",
    "mond": "the moon",
    "lua": "the moon",
    "cocina": "the kitchen",
    "cuisine": "the kitchen",
    "küche": "the kitchen",
    "кухн": "the kitchen",
    "厨房": "the kitchen",
    "escuela": "the classroom",
    "école": "the classroom",
    "schule": "the classroom",
    "школ": "the classroom",
    "学校": "the classroom",
})
# Time of day words in other languages.
TIME_STEMS: dict[str, Literal["dawn", "day", "dusk", "night"]] = {
    "noche": "night", "nuit": "night", "nacht": "night", "ноч": "night", "夜": "night",
    "ليل": "night", "לילה": "night", "notte": "night", "रात": "night",
    "amanecer": "dawn", "aube": "dawn", "morgen": "dawn", "утр": "dawn", "日出": "dawn",
    "فجر": "dawn", "朝": "dawn", "atardecer": "dusk", "soir": "dusk", "abend": "dusk",
    "вечер": "dusk", "日落": "dusk", "夕": "dusk", "مساء": "dusk",
}
# Words of Unicode character names ("WHALE", "DESERT ISLAND") that make an emoji a place.
EMOJI_PLACES: dict[str, str] = {
    "ISLAND": "the island",
    "WAVE": "the sea",
    "CASTLE": "the castle",
    "TREE": "the forest",
    "MOUNTAIN": "the mountains",
    "CITY": "the city",
    "CITYSCAPE": "the city",
    "HOUSE": "the house",
    "DESERT": "the desert",
    "SNOWFLAKE": "the snow",
    "MOON": "the moon",
    "ROCKET": "space",
    "BEACH": "the beach",
    "VOLCANO": "the mountains",
    "CAMPING": "the forest",
}
PERSON_NAME_WORDS = _set(
    "MAN WOMAN PERSON BOY GIRL CHILD BABY OLDER FACE PRINCESS PRINCE ASTRONAUT FAIRY MAGE "
    "VAMPIRE MERPERSON MERMAID ZOMBIE GHOST ALIEN ROBOT ELF GENIE DETECTIVE COOK FARMER"
)
