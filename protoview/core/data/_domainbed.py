"""DomainBed's image benchmarks as they lie on disk: PACS, VLCS, OfficeHome, TerraIncognita, DomainNet.

Spellings (``ROOT`` is DomainBed's ``--data_dir``, holding ``PACS/``, ``VLCS/``,
``office_home/``, ``terra_incognita/``, ``domain_net/``; or that dataset folder itself, as
TSD's ``--data_dir`` is)::

    pacs:ROOT:DOMAIN   vlcs:ROOT:DOMAIN   officehome:ROOT:DOMAIN
    terraincognita:ROOT:DOMAIN   domainnet:ROOT:DOMAIN

``DOMAIN`` is a domain folder (``art_painting``; case, spaces, ``_`` and ``-`` do not
matter, so ``realworld`` finds ``Real World``) or DomainBed's environment index
(``--test_envs 0`` is the first domain in sorted order).

Class order is DomainBed's: ``MultipleEnvironmentImageFolder`` opens each domain with
torchvision's ``ImageFolder``, whose classes are the sorted class-folder names (Python's
order: ``TV`` before ``Table``, ``The_Eiffel_Tower`` before ``aircraft_carrier``). TSD's
``ImageDataset`` does the same. So class ``k`` of a DomainBed or TSD checkpoint is class
``k`` here. A domain holding only some of the classes keeps DomainBed's full class list
(the absent classes keep their indices); class folders DomainBed's copy does not have make
the classes follow the sorted folders of all domains here, with a warning.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from protoview.core.data._folder import ImageFolderDataset
from protoview.core.model import TransformSpec
from protoview.core.warnings import ProtoviewWarning
from protoview.errors import DatasetError


@dataclass(frozen=True)
class DomainBedFamily:
    """One DomainBed dataset: its name, folder names, domains (environments) and classes."""

    name: str
    folders: tuple[str, ...]
    domains: tuple[str, ...]
    classes: tuple[str, ...]


_OFFICEHOME_CLASSES = (
    "Alarm_Clock", "Backpack", "Batteries", "Bed", "Bike", "Bottle", "Bucket", "Calculator",
    "Calendar", "Candles", "Chair", "Clipboards", "Computer", "Couch", "Curtains", "Desk_Lamp",
    "Drill", "Eraser", "Exit_Sign", "Fan", "File_Cabinet", "Flipflops", "Flowers", "Folder",
    "Fork", "Glasses", "Hammer", "Helmet", "Kettle", "Keyboard", "Knives", "Lamp_Shade",
    "Laptop", "Marker", "Monitor", "Mop", "Mouse", "Mug", "Notebook", "Oven", "Pan",
    "Paper_Clip", "Pen", "Pencil", "Postit_Notes", "Printer", "Push_Pin", "Radio",
    "Refrigerator", "Ruler", "Scissors", "Screwdriver", "Shelf", "Sink", "Sneakers", "Soda",
    "Speaker", "Spoon", "TV", "Table", "Telephone", "ToothBrush", "Toys", "Trash_Can", "Webcam",
)  # fmt: skip
_DOMAINNET_CLASSES = tuple(
    """
    The_Eiffel_Tower The_Great_Wall_of_China The_Mona_Lisa aircraft_carrier airplane alarm_clock
    ambulance angel animal_migration ant anvil apple arm asparagus axe backpack banana bandage
    barn baseball baseball_bat basket basketball bat bathtub beach bear beard bed bee belt bench
    bicycle binoculars bird birthday_cake blackberry blueberry book boomerang bottlecap bowtie
    bracelet brain bread bridge broccoli broom bucket bulldozer bus bush butterfly cactus cake
    calculator calendar camel camera camouflage campfire candle cannon canoe car carrot castle
    cat ceiling_fan cell_phone cello chair chandelier church circle clarinet clock cloud
    coffee_cup compass computer cookie cooler couch cow crab crayon crocodile crown cruise_ship
    cup diamond dishwasher diving_board dog dolphin donut door dragon dresser drill drums duck
    dumbbell ear elbow elephant envelope eraser eye eyeglasses face fan feather fence finger
    fire_hydrant fireplace firetruck fish flamingo flashlight flip_flops floor_lamp flower
    flying_saucer foot fork frog frying_pan garden garden_hose giraffe goatee golf_club grapes
    grass guitar hamburger hammer hand harp hat headphones hedgehog helicopter helmet hexagon
    hockey_puck hockey_stick horse hospital hot_air_balloon hot_dog hot_tub hourglass house
    house_plant hurricane ice_cream jacket jail kangaroo key keyboard knee knife ladder lantern
    laptop leaf leg light_bulb lighter lighthouse lightning line lion lipstick lobster lollipop
    mailbox map marker matches megaphone mermaid microphone microwave monkey moon mosquito
    motorbike mountain mouse moustache mouth mug mushroom nail necklace nose ocean octagon
    octopus onion oven owl paint_can paintbrush palm_tree panda pants paper_clip parachute
    parrot passport peanut pear peas pencil penguin piano pickup_truck picture_frame pig pillow
    pineapple pizza pliers police_car pond pool popsicle postcard potato power_outlet purse
    rabbit raccoon radio rain rainbow rake remote_control rhinoceros rifle river roller_coaster
    rollerskates sailboat sandwich saw saxophone school_bus scissors scorpion screwdriver
    sea_turtle see_saw shark sheep shoe shorts shovel sink skateboard skull skyscraper
    sleeping_bag smiley_face snail snake snorkel snowflake snowman soccer_ball sock speedboat
    spider spoon spreadsheet square squiggle squirrel stairs star steak stereo stethoscope
    stitches stop_sign stove strawberry streetlight string_bean submarine suitcase sun swan
    sweater swing_set sword syringe t-shirt table teapot teddy-bear telephone television
    tennis_racquet tent tiger toaster toe toilet tooth toothbrush toothpaste tornado tractor
    traffic_light train tree triangle trombone truck trumpet umbrella underwear van vase violin
    washing_machine watermelon waterslide whale wheel windmill wine_bottle wine_glass
    wristwatch yoga zebra zigzag
    """.split()
)

#: DomainBed's folder names (``domainbed/datasets.py``, ``scripts/download.py``) first, then
#: the spellings other copies use (TSD's ``office-home``, the archive's original name).
FAMILIES: dict[str, DomainBedFamily] = {
    "pacs": DomainBedFamily(
        "PACS", ("PACS", "pacs"), ("art_painting", "cartoon", "photo", "sketch"),
        ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person"),
    ),
    "vlcs": DomainBedFamily(
        "VLCS", ("VLCS", "vlcs"), ("Caltech101", "LabelMe", "SUN09", "VOC2007"),
        ("bird", "car", "chair", "dog", "person"),
    ),
    "officehome": DomainBedFamily(
        "OfficeHome", ("office_home", "OfficeHome", "office-home", "OfficeHomeDataset_10072016"),
        ("Art", "Clipart", "Product", "Real World"), _OFFICEHOME_CLASSES,
    ),
    "terraincognita": DomainBedFamily(
        "TerraIncognita", ("terra_incognita", "TerraIncognita"),
        ("location_100", "location_38", "location_43", "location_46"),
        ("bird", "bobcat", "cat", "coyote", "dog", "empty", "opossum", "rabbit", "raccoon", "squirrel"),
    ),
    "domainnet": DomainBedFamily(
        "DomainNet", ("domain_net", "DomainNet"),
        ("clipart", "infograph", "painting", "quickdraw", "real", "sketch"), _DOMAINNET_CLASSES,
    ),
}  # fmt: skip
KINDS = tuple(FAMILIES)


def _norm(name: str) -> str:
    return name.lower().replace(" ", "").replace("_", "").replace("-", "")


def parse_domainbed_spec(spec: str) -> tuple[str, str, str] | None:
    """``"pacs:/data:art_painting"`` -> ``(kind, root, domain)``; None if not such a spec.

    Raises DatasetError (naming the spec) when the kind is known but a field is missing.
    """
    kind, sep, rest = spec.partition(":")
    kind = _norm(kind.strip())
    if not sep or kind not in FAMILIES:
        return None
    root, sep, domain = rest.rpartition(":")
    if not sep or not root.strip() or not domain.strip():
        family = FAMILIES[kind]
        raise DatasetError(
            spec,
            f"expected {kind}:ROOT:DOMAIN with DOMAIN one of {', '.join(family.domains)} "
            f"(or its environment index 0..{len(family.domains) - 1})",
        )
    return kind, root.strip(), domain.strip()


def _subfolders(folder: str) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError as exc:
        raise DatasetError(folder, f"cannot list this folder ({exc.strerror or exc})") from None


def _dataset_folder(family: DomainBedFamily, root: str) -> str:
    for name in family.folders:
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    return root


def _find_domain(family: DomainBedFamily, folder: str, wanted: str, spec: str) -> tuple[str, int]:
    """(domain folder name, DomainBed environment index) for ``wanted``."""
    present = _subfolders(folder)
    target = wanted
    if wanted.isdigit():
        index = int(wanted)
        if index >= len(family.domains):
            raise DatasetError(
                spec, f"environment {index} does not exist: {family.name} has environments 0..{len(family.domains) - 1} ({', '.join(family.domains)})"
            )
        target = family.domains[index]
    matches = [d for d in present if d == target] or [d for d in present if _norm(d) == _norm(target)]
    if len(matches) != 1:
        listing = ", ".join(f"{i} {d}" for i, d in enumerate(family.domains))
        found = ", ".join(present) if present else "no folders"
        raise DatasetError(
            os.path.join(folder, target),
            f"no {family.name} domain {wanted!r} here (found: {found}); {family.name}'s domains: {listing}. "
            f"Expected ROOT/{family.folders[0]}/<domain>/<class>/<images>, as DomainBed lays it out",
        )
    domain = matches[0]
    known = [i for i, d in enumerate(family.domains) if _norm(d) == _norm(domain)]
    return domain, (known[0] if known else present.index(domain))


def _class_list(family: DomainBedFamily, folder: str, domain: str) -> tuple[list[str], list[str]]:
    """(class folders in class-index order, notes)."""
    domain_dir = os.path.join(folder, domain)
    here = _subfolders(domain_dir)
    if not here:
        raise DatasetError(domain_dir, f"holds no class folders; expected {domain}/<class>/<images> ({family.name}'s classes: {', '.join(family.classes[:7])}{', ...' if len(family.classes) > 7 else ''})")
    foreign = [c for c in here if c not in family.classes]
    if not foreign:
        missing = [c for c in family.classes if c not in here]
        notes = []
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            notes.append(
                f"{domain_dir} has no folder for {len(missing)} of {family.name}'s {len(family.classes)} classes "
                f"({shown}); the other classes keep DomainBed's indices"
            )
        return list(family.classes), notes
    union = sorted({c for d in _subfolders(folder) for c in _subfolders(os.path.join(folder, d))})
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    return union, [
        f"the class folders of {folder} are not DomainBed's {family.name} classes ({shown} not among them); "
        f"class k is the k-th of the {len(union)} sorted class folders of all its domains, as DomainBed's "
        "ImageFolder numbers them: check that the checkpoint was trained on these folders"
    ]


def open_domainbed(
    spec: str, transform: TransformSpec, *, num_classes: int | None = None
) -> ImageFolderDataset:
    """Open a DomainBed spec such as ``"pacs:/data:art_painting"`` (see the module docstring).

    Raises
    ------
    DatasetError
        Naming the spec or the folder: a missing domain (the domains are listed), a domain
        without class folders, no images, labels out of ``num_classes``.
    """
    parsed = parse_domainbed_spec(spec)
    if parsed is None:
        raise DatasetError(spec, f"not a DomainBed spec; expected KIND:ROOT:DOMAIN with KIND in {', '.join(KINDS)}")
    kind, root, wanted = parsed
    family = FAMILIES[kind]
    root = str(Path(root).expanduser().absolute())
    if not os.path.isdir(root):
        raise DatasetError(root, f"folder does not exist; expected DomainBed's data folder (holding {family.folders[0]}/) or the {family.name} folder")
    folder = _dataset_folder(family, root)
    domain, environment = _find_domain(family, folder, wanted, spec)
    classes, notes = _class_list(family, folder, domain)
    domain_dir = os.path.join(folder, domain)
    dataset = ImageFolderDataset(domain_dir, transform, num_classes=num_classes, class_folders=classes)
    dataset.source = f"{kind}:{folder}:{domain}"
    dataset.description = (
        f"{family.name} domain {domain} (environment {environment}, {domain_dir}): "
        f"{len(dataset)} images, {len(classes)} classes in DomainBed's order"
    )
    dataset.suggested_preprocess = "domainbed"
    dataset.benchmark = {"dataset": family.name, "domain": domain, "environment": environment}
    dataset.notes = (*dataset.notes, *notes)
    for note in notes:
        warnings.warn(ProtoviewWarning(note), stacklevel=3)
    return dataset
