package lint

// The policy vocabulary, as data. Each entry is a word or a phrase of words separated by
// spaces; a word ending in "*" is a stem (it matches any word starting with it: "скидк*"
// matches скидка, скидки, скидкой), a word without it must match whole. Matching is
// case-insensitive, treats ё as е, works on whole words (a stem only matches from the start
// of a word, so "заказ" never hits "каз*"), and ignores the text of variables.
//
// Russian stems are cut before the inflected ending and before a fleeting vowel
// ("таблет*" for таблетка/таблеток, "биодобав*" for биодобавка/биодобавок). A stem that is
// also the start of an innocent word gets an entry in neutralPhrases rather than a longer
// stem.
//
// strong entries predict a rejection (severity error); weak entries are ambiguous on their
// own (severity warning).

// vocab is one group of policy words.
type vocab struct {
	code         string
	marketingOK  bool   // the group is fine in a MARKETING template
	strongReason string // reason of a strong match
	weakReason   string // reason of a weak match
	strong, weak []string
}

// neutralPhrases are never policy matches: words they cover are skipped by every group.
// Each one is an innocent use of a stem below.
var neutralPhrases = []string{
	// A discount/loyalty card is an account, like a bank card: its balance or expiry is a
	// utility notice. The offer itself ("скидка 10%") is still flagged.
	"скидочн* карт*", "дисконтн* карт*", "discount card*", "loyalty card*",
	// акци* (promotion) also starts shareholders and excise duty.
	"акционер*", "акциз*",
	// игр* (games) also starts toys, playgrounds and sparkling wine.
	"игрушк*", "игров* площадк*", "игров* комнат*", "игрист*",
	// sale in commerce vocabulary.
	"point of sale", "sales receipt*", "sale receipt*", "bill of sale",
	// free and бесплатн* in contact details and idioms.
	"toll free", "feel free", "free of charge", "бесплатн* номер*", "бесплатн* телефон*", "бесплатн* лини*",
	"звонок бесплатн*",
	// deal as a verb.
	"deal with", "dealing with",
	// отзыв* is also the withdrawal of consent, an application or a licence.
	"отзыв* согласи*", "отзыв* заявлени*", "отзыв* лиценз*", "отзыв* доверенност*",
}

// promoVocab: promotional content. Meta rejects it in UTILITY and AUTHENTICATION templates
// (or moves the template to MARKETING, which costs more and needs opt-in).
var promoVocab = vocab{
	code:         "promo_in_utility",
	marketingOK:  true,
	strongReason: "promotional wording in a %s template: Meta rejects it or recategorises it as MARKETING",
	weakReason:   "wording that often reads as promotional in a %s template",
	strong: []string{
		// Discounts, sales, markdowns.
		"скидк*", "скидочн*", "распродаж*", "акци*", "уценк*", "уценен*", "сейл", "низк* цен*",
		"снижен* цен*", "цен* снижен*", "лучш* цен*", "суперцен*", "полцены", "ликвидаци* коллекци*",
		"discount*", "sale", "clearance", "half price", "price drop*", "lowest price*", "best price*",
		"save up to",
		// Promo codes and coupons.
		"промокод*", "промо*", "купон*", "promo*", "coupon*",
		// Named offers and urgency to buy.
		"спецпредложени*", "специальн* предложени*", "выгодн* предложени*", "эксклюзивн* предложени*",
		"черн* пятниц*", "киберпонедельник*", "успей* купить", "успей* приобрести", "дарим",
		"бесплатн* доставк*",
		"special offer*", "exclusive offer*", "limited offer*", "limited time", "black friday",
		"cyber monday", "shop now", "buy now", "order now", "buy one get one", "bogo",
		"free shipping", "free delivery",
		// Open days and new-shop openings.
		"открыт* дверей", "нов* магазин*", "нов* бутик*", "нов* шоурум*", "открыти* магазин*",
		"открыти* бутик*", "открыти* нов*", "торжественн* открыти*", "мы открыл*", "мы открываем*",
		"open day*", "open house", "grand opening", "now open", "opening soon", "new store*",
		"new shop*", "new boutique*", "store opening*",
	},
	weak: []string{
		// Words that are promotional in most templates but have innocent uses.
		"бесплатн*", "подар*", "выгод*", "кешбэк*", "кэшбэк*", "кешбек*", "кэшбек*", "только сегодня",
		"нов* коллекци*", "новинк*",
		"free", "offer*", "deal", "deals", "voucher*", "cashback", "cash back", "sales",
		"new arrival*", "new collection*", "today only",
	},
}

// greetingVocab: holiday and birthday greetings. Meta treats a greeting as marketing: with
// an offer anywhere in the template it is a rejection (greeting_offer), alone a risk.
var greetingVocab = vocab{
	code:         "greeting",
	marketingOK:  true,
	strongReason: "a greeting with an offer in a %s template: Meta treats it as marketing",
	weakReason:   "a greeting in a %s template: Meta usually treats greetings as marketing",
	weak: []string{
		// Congratulations and holidays, Russian.
		"поздравл*", "с днем рождени*", "с днем рожденья", "с праздник*", "с нов* год*",
		"с рождеств*", "с 8 марта", "с 23 феврал*", "с юбиле*",
		// English.
		"congratulation*", "happy birthday", "happy new year", "merry christmas", "happy holidays",
		"season* greetings", "happy easter",
	},
}

// offerWords turn a greeting into a greeting with an offer.
var offerWords = []string{
	"подар*", "дари*", "дарим", "предлага*", "предложени*", "скидк*", "промокод*", "купон*",
	"gift*", "offer*", "discount*", "coupon*", "promo*", "free",
}

// surveyVocab: surveys and questionnaires, refused in every category.
var surveyVocab = vocab{
	code:         "survey",
	strongReason: "a survey or questionnaire: Meta does not approve survey templates",
	weakReason:   "a request for ratings or feedback: often read as a survey",
	strong: []string{
		// Questionnaires and polls.
		"анкет*", "опрос*", "вопросник*", "нескольк* вопрос*", "пар* вопрос*",
		"survey*", "questionnaire*", "poll", "polls", "few questions", "couple of questions",
	},
	weak: []string{
		// Ratings and reviews.
		"оцените", "оцени* нас", "оценк* качеств*", "отзыв*",
		"feedback", "rate us", "rate your", "leave a review", "write a review", "quiz*",
	},
}

// threatVocab: threats and intimidation, refused in every category.
var threatVocab = vocab{
	code:         "threat",
	strongReason: "threatening wording: Meta rejects intimidating templates",
	weakReason:   "pressure or legal-threat wording: a risk of rejection",
	strong: []string{
		// Explicit threats.
		"последн* предупреждени*", "пожалеете", "пожалеешь", "накажем", "не поздоров*",
		"мы вас найд*", "вас найдем", "найдем вас", "убью", "убьем", "пеняйте на себя",
		"будет хуже",
		"final warning", "last warning", "regret it", "or else", "we will find you",
		"we know where you live", "kill", "will hurt",
	},
	weak: []string{
		// Debt-collection pressure: legitimate notices exist, the tone decides.
		"коллектор*", "судебн* порядк*", "принудительн* взыскани*", "в противном случае",
		"debt collector*", "collection agency", "legal action",
	},
}

// insultVocab: insults, refused in every category.
var insultVocab = vocab{
	code:         "insult",
	strongReason: "insulting wording: Meta rejects abusive templates",
	strong: []string{
		"дурак*", "дура", "дуры", "идиот*", "тупой", "тупая", "тупые", "тупица", "тупиц*", "придур*",
		"дебил*", "кретин*", "урод", "уроды", "уродин*", "сволоч*", "ничтожеств*", "бездар*", "лох",
		"лохи", "лошар*", "козел", "козлы", "мудак*", "скотин*", "негодя*", "подонок", "подонк*",
		"idiot*", "stupid", "moron*", "loser*", "dumb", "dumbass", "imbecile*", "jerk", "scum",
		"worthless", "pathetic", "fool", "fools", "shut up",
	},
}

// industryVocab: industries WhatsApp's Commerce Policy never allows, in every category.
var industryVocab = vocab{
	code:         "banned_industry",
	strongReason: "an industry WhatsApp never approves (medicines, supplements, gambling, games, drugs)",
	weakReason:   "a word of an industry WhatsApp restricts: check the template is not selling it",
	strong: []string{
		// Medicines and pharmacies.
		"аптек*", "лекарств*", "медикамент*", "таблет*", "рецептурн*",
		"pharmac*", "drugstore*", "medicine*", "medication*", "pill", "pills", "prescription drug*",
		// Dietary supplements.
		"бад", "бады", "бадов", "бадам", "бадах", "биодобав*", "пищев* добав*",
		"биологически активн* добав*",
		"dietary supplement*", "food supplement*", "nutritional supplement*",
		// Casinos, gambling, betting, lotteries.
		"казино", "букмекер*", "ставк* на спорт", "азартн*", "игров* автомат*", "покер*", "рулетк*",
		"джекпот*", "лотере*", "тотализатор*", "беттинг*", "слот машин*",
		"casino*", "gambl*", "betting", "bookmaker*", "sportsbook*", "poker", "roulette", "jackpot*",
		"lottery", "lotteries", "slot machine*",
		// Games.
		"видеоигр*", "онлайн игр*", "компьютерн* игр*", "игров* клуб*",
		"online game*", "video game*", "gaming",
		// Drugs.
		"наркот*", "марихуан*", "каннабис*", "гашиш*", "кокаин*", "героин", "героина", "героином",
		"амфетамин*", "психоактивн*",
		"drug", "drugs", "narcotic*", "cannabis", "marijuana", "cocaine", "heroin",
	},
	weak: []string{
		// Healthcare and wellness: services may pass, selling products does not.
		"препарат*", "медицин*", "клиник*", "врач*", "витамин*", "похуд*", "жиросжигат*",
		"supplement*", "vitamin*", "clinic*", "doctor*", "medical", "prescription*", "weight loss", "cbd",
		// Games in general.
		"игр*", "game", "games", "bet", "bets",
	},
}

// policyVocab are the word groups every text of a template is checked against, in order.
var policyVocab = []*vocab{&promoVocab, &surveyVocab, &threatVocab, &insultVocab, &industryVocab}

// percentTriggers: next to a percentage they make it a percent-off offer: "до 70%",
// "-20%", "up to 50%", "30% off", "скидка 10%".
var (
	percentBefore = []string{"до", "скидк*", "discount*", "sale", "экономи*", "save", "минус"}
	percentAfter  = []string{"off", "скидк*", "дешевл*", "cheaper", "discount*"}
)
