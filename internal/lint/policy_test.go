package lint

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/templates"
)

// withBody builds a template of a category whose body is text, with an example value for
// every positional variable, so that only what the text says is linted.
func withBody(category, text string) *templates.Definition {
	top := 0
	for _, v := range scanVars(text) {
		top = max(top, v.num)
	}
	comp := templates.Component{Type: templates.ComponentBody, Text: text}
	if top > 0 {
		ex := make([]string, top)
		for i := range ex {
			ex[i] = "sample" + strconv.Itoa(i+1)
		}
		comp.Example = &templates.Example{BodyText: [][]string{ex}}
	}
	return &templates.Definition{Name: "t", Language: "ru", Category: category, Components: []templates.Component{comp}}
}

// componentText returns the text a finding's span points into.
func componentText(t *testing.T, def *templates.Definition, comp string) string {
	t.Helper()
	d := normalised(def)
	find := func(typ string) *templates.Component {
		for i := range d.Components {
			if d.Components[i].Type == typ {
				return &d.Components[i]
			}
		}
		t.Fatalf("finding names %s, which the template does not have", comp)
		return nil
	}
	switch comp {
	case "template", "buttons":
		return ""
	case "header":
		return find(templates.ComponentHeader).Text
	case "body":
		return find(templates.ComponentBody).Text
	case "footer":
		return find(templates.ComponentFooter).Text
	}
	var i int
	var field string
	if _, err := fmt.Sscanf(comp, "buttons[%d]%s", &i, &field); err != nil && field == "" {
		if _, err := fmt.Sscanf(comp, "buttons[%d]", &i); err != nil {
			t.Fatalf("unknown component %q", comp)
		}
	}
	b := find(templates.ComponentButtons).Buttons[i]
	if field == ".url" {
		return b.URL
	}
	return b.Text
}

// lintChecked lints def and checks what every finding must satisfy: a known severity, a
// reason, and a span that is exactly the byte range of its component's text it claims.
func lintChecked(t *testing.T, def *templates.Definition) []Finding {
	t.Helper()
	fs := Lint(def)
	for _, f := range fs {
		if f.Severity != Error && f.Severity != Warning || f.Code == "" || f.Reason == "" || strings.Contains(f.Reason, "\n") {
			t.Errorf("malformed finding %+v", f)
		}
		text := []rune(componentText(t, def, f.Component)) // spans count characters
		if f.Span.Start < 0 || f.Span.End > len(text) || f.Span.Start > f.Span.End || string(text[f.Span.Start:f.Span.End]) != f.Span.Text {
			t.Errorf("finding %s: span %+v is not %s text %q[%d:%d]", f.Code, f.Span, f.Component, text, f.Span.Start, f.Span.End)
		}
	}
	return fs
}

func describe(fs []Finding) string {
	var b strings.Builder
	Format(&b, "t", fs)
	return b.String()
}

// The examples of issue 6: two pass clean, two are flagged.
func TestIssueExamples(t *testing.T) {
	t.Parallel()
	for _, text := range []string{
		"Ваш заказ номер {{1}} находится в точке выдачи по адресу {{2}}. Срок хранения до {{3}} включительно.",
		"Здравствуйте. Напоминаем вам о брони в нашем отеле с {{1}} по {{2}}. Ждем вас.",
	} {
		if fs := lintChecked(t, withBody(templates.CategoryUtility, text)); len(fs) != 0 {
			t.Errorf("%q: want no finding, got\n%s", text, describe(fs))
		}
	}
	for text, code := range map[string]string{
		"Акция! Скидки до 70% на прошлогоднюю коллекцию одежды. Ждем вас в наших магазинах.":                          "promo_in_utility",
		"Добрый день. Предлагаем пройти анкетирование и ответить на несколько вопросов. Это займет не более 5 минут.": "survey",
	} {
		fs := lintChecked(t, withBody(templates.CategoryUtility, text))
		if !HasErrors(fs) || !hasFinding(fs, code, Error, "") {
			t.Errorf("%q: want error %s, got\n%s", text, code, describe(fs))
		}
	}
}

func hasFinding(fs []Finding, code string, sev Severity, spanText string) bool {
	for _, f := range fs {
		if f.Code == code && f.Severity == sev && (spanText == "" || f.Span.Text == spanText) {
			return true
		}
	}
	return false
}

// cleanUtility are UTILITY bodies that must produce no finding at all, tricky ones included.
var cleanUtility = []struct{ name, text string }{
	// Orders and deliveries. "заказ" contains no stem of the vocabulary.
	{"pickup point", "Ваш заказ номер {{1}} находится в точке выдачи по адресу {{2}}. Срок хранения до {{3}} включительно."},
	{"courier", "Ваш заказ {{1}} передан в службу доставки. Курьер привезёт его {{2}} с 10:00 до 18:00."},
	{"parcel arrived", "Посылка {{1}} прибыла в пункт выдачи по адресу {{2}}. Возьмите с собой паспорт."},
	{"cash on delivery", "Заказ {{1}} оформлен. Оплата при получении, сумма к оплате {{2}} руб."},
	{"order canceled", "Ваш заказ номер {{1}} отменён. Деньги в размере {{2}} руб. вернутся на карту в течение 3 дней."},
	{"refund", "Ваш возврат по заказу {{1}} оформлен. Деньги поступят на карту до {{2}}."},
	{"progress percent is not an offer", "Ваш заказ {{1}} собран на 80% и будет готов к выдаче {{2}}. Мы пришлём уведомление."},
	{"toll-free number", "По вопросам доставки заказа {{1}} звоните по бесплатному номеру 8 800 123-45-67."},
	// Bookings and appointments.
	{"hotel", "Здравствуйте. Напоминаем вам о брони в нашем отеле с {{1}} по {{2}}. Ждем вас."},
	{"car service", "Вы записаны в автосервис на {{1}} в {{2}}. Если планы изменились, позвоните нам."},
	{"beauty salon", "Напоминаем о записи в салон красоты {{1}} на {{2}}. Для отмены ответьте на это сообщение."},
	// Bonus balances and discount cards: an account balance is a utility notice (the
	// decision documented in vocab.go: "скидочная карта" is an account, not an offer).
	{"bonus expiring", "Бонусы на вашем счёте: {{1}}. Они сгорят {{2}}, потратить их можно при следующей покупке."},
	{"bonus reminder", "Напоминаем: {{1}} бонусов на вашей карте сгорят {{2}}. Проверить баланс можно в приложении."},
	{"discount card balance", "Баланс вашей скидочной карты {{1}} составляет {{2}} баллов. Баллы действительны до {{3}}."},
	{"discount card expiry", "Срок действия вашей скидочной карты истекает {{1}}. Продлить её можно в любом нашем магазине."},
	{"discount card, other word", "Ваша дисконтная карта {{1}} заблокирована по вашей просьбе {{2}}."},
	// Outages and maintenance.
	{"hot water", "Уважаемые жители! {{1}} с 10:00 до 14:00 будет отключена горячая вода по адресу {{2}}. Приносим извинения."},
	{"maintenance", "Плановые работы: {{1}} с 02:00 до 05:00 личный кабинет будет недоступен. Заказы, оформленные до начала работ, будут выполнены."},
	{"playground", "Детская игровая площадка в ЖК {{1}} будет закрыта на ремонт до {{2}}."},
	// Money and accounts.
	{"payment received", "Платёж по договору {{1}} на сумму {{2}} руб. получен. Спасибо!"},
	{"interest rate", "Ставка по вашему вкладу {{1}} с {{2}} составит 12% годовых согласно условиям договора."},
	{"shareholder", "Ваш акционерный счёт {{1}} пополнен на {{2}} руб. Подробности в личном кабинете."},
	{"excise", "Акцизная марка товара {{1}} проверена, заказ {{2}} готов к отгрузке."},
	{"consent withdrawn", "Отзыв согласия на обработку данных по договору {{1}} принят {{2}}. Копия заявления в личном кабинете."},
	{"login code", "Код для входа в личный кабинет: {{1}}. Никому не сообщайте его."},
	// English.
	{"shipped", "Your order {{1}} has shipped and will arrive on {{2}}. Track it in the app."},
	{"table booked", "Reminder: your table for {{1}} people is booked for {{2}}. Reply to this message to cancel."},
	{"appointment", "Your appointment at {{1}} is confirmed for {{2}}. Please arrive 10 minutes early."},
	{"website maintenance", "Scheduled maintenance: our website will be unavailable on {{1}} from 01:00 to 03:00. We apologise for the inconvenience."},
	{"loyalty card balance", "Your loyalty card balance is {{1}} points. Points expire on {{2}}, so use them on your next purchase."},
	{"discount card expiry en", "Your discount card {{1}} expires on {{2}}. Renew it at any checkout."},
	{"payment received en", "Your payment of {{1}} for invoice {{2}} was received. Thank you!"},
	{"toll-free en", "Questions about delivery of order {{1}}? Call our toll-free line 0800 123 456."},
	{"password changed", "Hi {{1}}, your password was changed on {{2}}. If this was not you, contact support."},
	{"rate change to percent", "Your savings account rate changes to 3.5% from {{1}} under the terms of your agreement."},
	{"power off", "Power will be off at {{1}} on {{2}} due to planned works. We expect it back by 18:00."},
	{"parcel waiting", "Your parcel {{1}} is waiting at pickup point {{2}} until {{3}} inclusive."},
	{"feel free", "Your booking {{1}} is confirmed. Feel free to contact us about it before {{2}}."},
}

func TestCleanUtility(t *testing.T) {
	t.Parallel()
	if len(cleanUtility) < 30 {
		t.Fatalf("only %d clean cases", len(cleanUtility))
	}
	for _, tc := range cleanUtility {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if fs := lintChecked(t, withBody(templates.CategoryUtility, tc.text)); len(fs) != 0 {
				t.Errorf("%q: want no finding, got\n%s", tc.text, describe(fs))
			}
		})
	}
}

// flagged are bodies that must have an error with the given code, on exactly the given span
// text.
var flagged = []struct {
	name, category, text, code, span string
}{
	// Promotions in a utility template.
	{"sale and discount", "UTILITY", "Акция! Скидки до 70% на прошлогоднюю коллекцию одежды. Ждем вас в наших магазинах.", "promo_in_utility", "Скидки"},
	{"promotion word", "UTILITY", "Акция! Скидки до 70% на прошлогоднюю коллекцию одежды. Ждем вас в наших магазинах.", "promo_in_utility", "Акция"},
	{"up to percent ru", "UTILITY", "Акция! Скидки до 70% на прошлогоднюю коллекцию одежды. Ждем вас в наших магазинах.", "percent_off", "до 70%"},
	{"clearance sale", "UTILITY", "Распродажа в магазине {{1}}: всё по сниженным ценам до {{2}}.", "promo_in_utility", "Распродажа"},
	{"reduced prices", "UTILITY", "Распродажа в магазине {{1}}: всё по сниженным ценам до {{2}}.", "promo_in_utility", "сниженным ценам"},
	{"promo code ru", "UTILITY", "Только для вас промокод {{1}} на следующий заказ. Действует до {{2}}.", "promo_in_utility", "промокод"},
	{"promo code hyphen", "UTILITY", "Ваш промо-код {{1}} действует до {{2}}.", "promo_in_utility", "промо"},
	{"open day ru", "UTILITY", "Приглашаем на день открытых дверей в нашем салоне {{1}}. Начало в {{2}}.", "promo_in_utility", "открытых дверей"},
	{"new shop ru", "UTILITY", "Мы открыли новый магазин по адресу {{1}}! Приходите {{2}}.", "promo_in_utility", "новый магазин"},
	{"greeting with gift", "UTILITY", "Поздравляем с днём рождения! Дарим вам подарок: {{1}} бонусов до {{2}}.", "greeting_offer", "Поздравляем"},
	{"new year discount", "UTILITY", "С Новым годом, {{1}}! Специально для вас скидка 15% на все заказы до {{2}}.", "percent_off", "скидка 15%"},
	{"minus percent", "UTILITY", "Скидки -30% на всё в магазине {{1}} до {{2}}.", "percent_off", "-30%"},
	{"black friday ru", "UTILITY", "Чёрная пятница в {{1}}: успейте до {{2}}.", "promo_in_utility", "Чёрная пятница"},
	{"caps", "UTILITY", "АКЦИЯ для клиентов {{1}} до {{2}}.", "promo_in_utility", "АКЦИЯ"},
	{"footerless coupon", "UTILITY", "Ваш купон на {{1}} руб. действует до {{2}}.", "promo_in_utility", "купон"},
	{"sale en", "UTILITY", "Big sale this weekend at {{1}}: everything must go by {{2}}.", "promo_in_utility", "sale"},
	{"percent off en", "UTILITY", "Get 20% off your next order {{1}} until {{2}}.", "percent_off", "20% off"},
	{"up to percent en", "UTILITY", "Save on order {{1}}: up to 40% until {{2}} only.", "percent_off", "up to 40%"},
	{"promo code en", "UTILITY", "Use promo code {{1}} at checkout before {{2}}.", "promo_in_utility", "promo"},
	{"open day en", "UTILITY", "Join us for our open day at {{1}} on {{2}} at 10am.", "promo_in_utility", "open day"},
	{"grand opening", "UTILITY", "Grand opening of our new store at {{1}} on {{2}}, see you there.", "promo_in_utility", "Grand opening"},
	{"birthday gift", "UTILITY", "Happy birthday, {{1}}! Enjoy a gift from us: {{2}} bonus points today.", "greeting_offer", "Happy birthday"},
	{"authentication with discount", "AUTHENTICATION", "Your code is {{1}}. Get 50% off your first order with it today.", "percent_off", "50% off"},
	{"empty category is utility", "", "Распродажа в магазине {{1}} до {{2}}.", "promo_in_utility", "Распродажа"},
	// Surveys, in any category.
	{"questionnaire ru", "UTILITY", "Добрый день. Предлагаем пройти анкетирование и ответить на несколько вопросов. Это займет не более 5 минут.", "survey", "анкетирование"},
	{"several questions", "UTILITY", "Добрый день. Предлагаем пройти анкетирование и ответить на несколько вопросов. Это займет не более 5 минут.", "survey", "несколько вопросов"},
	{"poll ru", "UTILITY", "Пожалуйста, пройдите опрос о качестве обслуживания по ссылке {{1}}. Это важно для нас.", "survey", "опрос"},
	{"form ru", "UTILITY", "Заполните анкету клиента до {{1}}, чтобы мы стали лучше.", "survey", "анкету"},
	{"couple of questions ru", "UTILITY", "Ответьте, пожалуйста, на пару вопросов о доставке заказа {{1}}. Спасибо!", "survey", "пару вопросов"},
	{"survey en", "UTILITY", "Please take our short survey about order {{1}} before {{2}}.", "survey", "survey"},
	{"few questions en", "UTILITY", "We have a few questions about your stay at {{1}}, answer them by {{2}}.", "survey", "few questions"},
	{"survey in marketing", "MARKETING", "Tell us what you think in our questionnaire at {{1}} before {{2}}.", "survey", "questionnaire"},
	// Threats and insults.
	{"last warning ru", "UTILITY", "Это последнее предупреждение: оплатите долг {{1}} руб. до {{2}}.", "threat", "последнее предупреждение"},
	{"you will regret ru", "UTILITY", "Если не оплатите {{1}} до {{2}}, вы пожалеете.", "threat", "пожалеете"},
	{"final warning en", "UTILITY", "This is your final warning: pay {{1}} by {{2}} or else.", "threat", "final warning"},
	{"insult ru", "UTILITY", "Вы тупой клиент, заказ {{1}} снова не забрали к {{2}}.", "insult", "тупой"},
	{"insult en", "UTILITY", "Only an idiot would miss order {{1}} twice, collect it by {{2}}.", "insult", "idiot"},
	// Industries never approved, in any category.
	{"pharmacy ru", "UTILITY", "Аптека {{1}}: ваши лекарства готовы к выдаче до {{2}}.", "banned_industry", "Аптека"},
	{"medicines ru", "UTILITY", "Аптека {{1}}: ваши лекарства готовы к выдаче до {{2}}.", "banned_industry", "лекарства"},
	{"pills ru, fleeting vowel", "UTILITY", "Заказ {{1}} из 10 таблеток ждёт вас до {{2}}.", "banned_industry", "таблеток"},
	{"supplements ru", "MARKETING", "Новые БАДы уже в продаже в магазине {{1}} с {{2}}.", "banned_industry", "БАДы"},
	{"casino ru", "MARKETING", "Казино {{1}} дарит бонус {{2}} новым гостям.", "banned_industry", "Казино"},
	{"sports betting ru", "MARKETING", "Ставки на спорт в приложении {{1}} с {{2}}.", "banned_industry", "Ставки на спорт"},
	{"lottery ru", "MARKETING", "Купите лотерейный билет {{1}} и выиграйте {{2}} рублей.", "banned_industry", "лотерейный"},
	{"online games ru", "MARKETING", "Онлайн-игры в клубе {{1}} каждый вечер до {{2}}.", "banned_industry", "Онлайн-игры"},
	{"drugs ru", "UTILITY", "Наркотики: доставка {{1}} по адресу {{2}}.", "banned_industry", "Наркотики"},
	{"pharmacy en", "UTILITY", "Your pharmacy order {{1}} is ready for pickup until {{2}}.", "banned_industry", "pharmacy"},
	{"casino en", "MARKETING", "Bet on tonight's match at {{1}} casino before {{2}}.", "banned_industry", "casino"},
	{"supplements en", "MARKETING", "Try our new dietary supplements at {{1}} from {{2}}.", "banned_industry", "dietary supplements"},
	{"gambling en", "MARKETING", "Gambling night at {{1}} starts at {{2}} sharp.", "banned_industry", "Gambling"},
}

func TestFlagged(t *testing.T) {
	t.Parallel()
	if len(flagged) < 30 {
		t.Fatalf("only %d flagged cases", len(flagged))
	}
	for _, tc := range flagged {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := lintChecked(t, withBody(tc.category, tc.text))
			if !hasFinding(fs, tc.code, Error, tc.span) {
				t.Errorf("%q: want error %s on %q, got\n%s", tc.text, tc.code, tc.span, describe(fs))
			}
		})
	}
}

// Promotion is what MARKETING templates are for: the promotional texts above lint without
// an error there, while surveys, threats and banned industries stay errors in any category.
func TestMarketingAllowsPromotion(t *testing.T) {
	t.Parallel()
	promo := map[string]bool{"promo_in_utility": true, "percent_off": true, "greeting_offer": true}
	for _, tc := range flagged {
		fs := lintChecked(t, withBody(templates.CategoryMarketing, tc.text))
		if promo[tc.code] && HasErrors(fs) {
			t.Errorf("%s as MARKETING: want no error, got\n%s", tc.name, describe(fs))
		}
		if !promo[tc.code] && !hasFinding(fs, tc.code, Error, tc.span) {
			t.Errorf("%s as MARKETING: want error %s, got\n%s", tc.name, tc.code, describe(fs))
		}
	}
}

// Weak signals are warnings, not errors.
func TestWarnings(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, text, code, span string }{
		{"gift certificate", "Ваш подарочный сертификат {{1}} действует до {{2}}.", "promo_in_utility", "подарочный"},
		{"free delivery fact", "Доставка заказа {{1}} бесплатна до {{2}}.", "promo_in_utility", "бесплатна"},
		{"rate the master", "Оцените, пожалуйста, работу мастера {{1}} в приложении до {{2}}.", "survey", "Оцените"},
		{"feedback", "Thanks for visiting {{1}}. Your feedback helps us until {{2}}.", "survey", "feedback"},
		{"double exclamation", "Your order {{1}} is ready!! Pick it up by {{2}}.", "exclamation", "!!"},
		{"three exclamations", "Ваш заказ {{1}} готов! Заберите его до {{2}}! Ждём вас!", "exclamation", "!"},
		{"doctor appointment", "Напоминаем о записи к врачу {{1}} на {{2}}.", "banned_industry", "врачу"},
		{"game tickets", "Tickets for the game on {{1}} are in your account {{2}}.", "banned_industry", "game"},
		{"congratulations alone", "Congratulations, {{1}}: your account {{2}} is now verified.", "greeting", "Congratulations"},
		{"birthday alone", "Поздравляем вас с днём рождения, {{1}}! Ваш менеджер {{2}}.", "greeting", "Поздравляем"},
		{"debt collector", "Your account {{1}} was referred to a debt collector on {{2}} as agreed.", "threat", "debt collector"},
		{"offer alone", "Your offer letter {{1}} is attached, sign it by {{2}}.", "promo_in_utility", "offer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := lintChecked(t, withBody(templates.CategoryUtility, tc.text))
			if HasErrors(fs) || !hasFinding(fs, tc.code, Warning, tc.span) {
				t.Errorf("%q: want only warnings, %s on %q among them; got\n%s", tc.text, tc.code, tc.span, describe(fs))
			}
		})
	}
}

// Words are matched on word boundaries and only from their start, and variables are not
// wording.
func TestWordBoundaries(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, text string }{
		{"stem inside a word", "Ваш предзаказ {{1}} и перезаказ {{2}} приняты в работу."},
		{"sale inside a word", "Wholesale order {{1}} is ready for pickup at {{2}} today."},
		{"variable names", "Ваш номер {{discount_code}} и {{promo}} проверены сегодня."},
	}
	for _, tc := range tests {
		d := withBody(templates.CategoryUtility, tc.text)
		if strings.Contains(tc.text, "{{discount_code}}") {
			d.ParameterFormat = templates.FormatNamed
			d.Components[0].Example = &templates.Example{BodyTextNamedParams: []templates.NamedExample{
				{ParamName: "discount_code", Example: "A1"}, {ParamName: "promo", Example: "B2"},
			}}
		}
		if fs := lintChecked(t, d); len(fs) != 0 {
			t.Errorf("%s: %q: want no finding, got\n%s", tc.name, tc.text, describe(fs))
		}
	}
}

// Every text of a template is read: header, footer and button labels too.
func TestPolicyInEveryComponent(t *testing.T) {
	t.Parallel()
	d := withBody(templates.CategoryUtility, "Ваш заказ {{1}} готов к выдаче до {{2}}.")
	d.Components = append([]templates.Component{{Type: "header", Format: "TEXT", Text: "Распродажа"}}, d.Components...)
	d.Components = append(d.Components,
		templates.Component{Type: "footer", Text: "Пройдите опрос в приложении"},
		templates.Component{Type: "buttons", Buttons: []templates.Button{{Type: "QUICK_REPLY", Text: "Получить скидку"}}},
	)
	fs := lintChecked(t, d)
	got := map[string]string{}
	for _, f := range fs {
		got[f.Component] = f.Code + " " + f.Span.Text
	}
	want := map[string]string{"header": "promo_in_utility Распродажа", "footer": "survey опрос", "buttons[0]": "promo_in_utility скидку"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
